"""Thousands of idle proxied TLS connections held open (SNISPLICE_IDLE, default 8,000; CI-sized
and full-sized alike, tests/soak may raise it): new connections keep being served, the proxy's
memory per idle connection stays within 1.5 KiB, and closing them all leaves nothing behind.
Loopback only; every loop bounded in count and time."""
import os
import resource
import time
import unittest

from harness import (SPLICE, EchoServer, ProxyTest, client_hello, exchange_latencies, free_port,
                     one_route_config, open_echoed_connections, percentile, rss_kib, wait_until)

IDLE = int(os.environ.get("SNISPLICE_IDLE", 8000))
SAMPLE = 200                  # new connections timed before and during the idle load
TARGET_KIB_PER_IDLE = 1.5     # issue 8: HAProxy 3.4, sniproxy 9.2, nginx 15.3 KiB here

# Each idle connection costs this process two descriptors (client and backend side) and the
# proxy two (it inherits this limit): both need the hard limit, not the default soft one.
_, hard_files = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard_files, hard_files))


class Idle(ProxyTest):
    def test_idle_connections_cost_little_memory_and_do_not_slow_new_ones(self):
        self.assertLessEqual(2 * IDLE + 1000, hard_files,
                             f"{IDLE} idle connections need {2 * IDLE + 1000} descriptors per process; "
                             f"the hard limit is {hard_files} (lower SNISPLICE_IDLE)")
        backend = EchoServer()
        self.later(backend.close)
        port = free_port()
        # Held connections must outlive the whole test, however slow the machine.
        proxy = self.proxy(one_route_config(port, backend.address, free_port(),
                                            listener_options={"max_connections": IDLE + SAMPLE + 100,
                                                              "per_ip_max_connections": IDLE + SAMPLE + 100},
                                            timeouts={"idle": "600s"}))
        target = ("127.0.0.1", port)
        hello = client_hello("idle.test")

        exchange_latencies(target, hello, 20)   # warm-up: first connections allocate worker state
        before = exchange_latencies(target, hello, SAMPLE)
        wait_until(lambda: proxy.metric("snisplice_active_connections") == 0, what="sample connections closed")
        rss_before = rss_kib([proxy.proc.pid])

        start = time.monotonic()
        held = open_echoed_connections(target, IDLE, hello, timeout=60)
        opened_in = time.monotonic() - start
        try:
            self.assertEqual(len(held), IDLE)
            wait_until(lambda: proxy.metric("snisplice_active_connections") == IDLE, timeout=15,
                       what=f"{IDLE} active connections")
            self.assertEqual(backend.open, IDLE)
            if SPLICE == "sockmap":   # every held connection was spliced in the kernel
                self.assertEqual(proxy.metric("snisplice_spliced_connections_total", mode="sockmap"),
                                 20 + SAMPLE + IDLE)
            # splice: auto counts a relayed connection when it ends (it could still be handed to
            # the kernel): only the closed warm-up and sample connections so far.
            relayed = {"sockmap": 0, "userspace": 20 + SAMPLE + IDLE}.get(SPLICE, 20 + SAMPLE)
            self.assertEqual(proxy.metric("snisplice_spliced_connections_total", mode="userspace"), relayed)
            time.sleep(1)   # let deferred frees and the workers' caches settle
            rss_idle = rss_kib([proxy.proc.pid])
            fds_idle = proxy.open_fds()
            during = exchange_latencies(target, hello, SAMPLE)
            # Nothing the load did closed a held connection: each still echoes.
            for c in held[::max(1, IDLE // 50)]:
                c.sendall(b"x")
                self.assertEqual(c.recv(1), b"x")
        finally:
            closing = time.monotonic()
            for c in held:
                c.close()

        per_idle = (rss_idle - rss_before) / IDLE
        ms = lambda t: f"{t * 1000:.2f} ms"
        print(f"\nidle[{SPLICE}]: {IDLE} connections opened in {opened_in:.1f} s; proxy fds {fds_idle}; "
              f"RSS {rss_before} KiB -> {rss_idle} KiB = {per_idle:.2f} KiB per idle connection "
              f"(target {TARGET_KIB_PER_IDLE})\n"
              f"idle[{SPLICE}]: {SAMPLE} new connections (hello, then 16 KiB, echoed) before: p50 {ms(percentile(before, 0.5))} "
              f"p99 {ms(percentile(before, 0.99))}; with {IDLE} idle: p50 {ms(percentile(during, 0.5))} "
              f"p99 {ms(percentile(during, 0.99))}", flush=True)
        if os.environ.get("SNISPLICE_SANITIZE") == "ON":
            print(f"idle[{SPLICE}]: memory target not checked: sanitizer builds keep shadow memory and "
                  "quarantined frees", flush=True)
        else:
            self.assertLessEqual(per_idle, TARGET_KIB_PER_IDLE)

        proxy.assert_nothing_left_behind(proxy.baseline_fds)
        closed_in = time.monotonic() - closing
        wait_until(lambda: backend.open == 0, timeout=15, what="backend connections closed")
        self.assertEqual(backend.errors, [])
        self.assertEqual(proxy.metric("snisplice_connections_total", result="proxied"), 20 + 2 * SAMPLE + IDLE)
        print(f"idle[{SPLICE}]: all closed and released in {closed_in:.1f} s: fds {proxy.open_fds()} (baseline {proxy.baseline_fds}), "
              f"RSS {rss_kib([proxy.proc.pid])} KiB", flush=True)


if __name__ == "__main__":
    unittest.main()
