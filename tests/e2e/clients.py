"""Many clients at once: each on its own thread, what each raised collected as a failure."""
import threading


class Clients:
    """client(i) for i in range(count), each on its own thread, all started at once.
    wait() joins them and returns the failures: what each raised, as "client i: ...", and
    each still running after `timeout` seconds."""

    def __init__(self, count, client):
        self.failures = []
        self.threads = [threading.Thread(target=self._run, args=(client, i), daemon=True) for i in range(count)]
        for t in self.threads:
            t.start()

    def _run(self, client, i):
        try:
            client(i)
        except Exception as e:
            self.failures.append(f"client {i}: {e!r}")

    def wait(self, timeout=120):
        for i, t in enumerate(self.threads):
            t.join(timeout)
            if t.is_alive():
                self.failures.append(f"client {i}: still running after {timeout}s")
        return self.failures


def run_clients(count, client, timeout=120):
    """Clients(count, client).wait(timeout): the failures of `count` concurrent clients."""
    return Clients(count, client).wait(timeout)
