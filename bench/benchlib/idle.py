"""Memory a proxy spends on idle connections: process RSS and kernel memory, per connection.

Scenarios, each N connections opened through the proxy, held, measured, then closed:
  waiting, cold:   the proxy freshly started; each client sends a real ClientHello and waits
                   for the backend's echo of it (as a TLS client waits for the server), then idles.
  waiting, warm:   the same again on the same proxy, once the first N have come and gone
                   (allocator pools, worker tables and the like are grown by then).
  stalled, cold / warm: clients that stop reading: after the hello's echo each sends STALL_BYTES
                   that the backend echoes and the client never reads (its receive buffer set to
                   4 KiB), so the echo piles up in the proxy and the sockets between.
Kernel memory is the growth of Slab (/proc/meminfo) and of the TCP socket memory
(/proc/net/sockstat `mem`, pages) while the connections are held; it counts every socket of a
connection (client, proxy, backend), so `direct` (client straight to the backend) is measured
too, as the baseline the proxies add to."""
import errno
import os
import selectors
import socket
import time

from .procfs import rss_kib   # not the harness's: a proxy's process may end between listing and reading

SCENARIOS = ("waiting-cold", "waiting-warm", "stalled-cold", "stalled-warm")
STALL_BYTES = 16384
CLIENT_RCVBUF = 4096


def kernel_memory_kib():
    """(Slab, TCP socket memory) in KiB."""
    with open("/proc/meminfo") as f:
        slab = next(int(line.split()[1]) for line in f if line.startswith("Slab:"))
    with open("/proc/net/sockstat") as f:
        tcp = next(line.split() for line in f if line.startswith("TCP:"))
    pages = int(tcp[tcp.index("mem") + 1])
    return slab, pages * os.sysconf("SC_PAGE_SIZE") // 1024


def open_connections(address, count, hello, stalled, timeout=120.0, in_flight=256):
    """`count` connections to address (host, port), each sending `hello` and reading its echo; a
    stalled one then sends STALL_BYTES and never reads again. Returns the open sockets.

    tests/e2e/harness.py's open_echoed_connections (bench/idle-memory already imports that
    harness) does the waiting half, but it has no way to shrink a socket's receive buffer before
    connect(), which a stalled client needs (the window it offers in its SYN must already be
    small, or the stall lands in the client instead of the proxy), nor to send after the echo;
    sharing it needs that function to take a receive buffer size and an after-echo payload."""
    selector = selectors.DefaultSelector()
    done, received, started = [], {}, 0
    deadline = time.monotonic() + timeout
    try:
        while len(done) < count:
            while started < count and len(received) < in_flight:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                if stalled:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, CLIENT_RCVBUF)
                s.setblocking(False)
                err = s.connect_ex(address)
                if err not in (0, errno.EINPROGRESS):
                    s.close()
                    raise OSError(err, f"connect to {address}: {os.strerror(err)}")
                selector.register(s, selectors.EVENT_WRITE)
                received[s] = None   # None: connecting
                started += 1
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(done)} of {count} connections answered after {timeout}s")
            for key, _ in selector.select(timeout=1.0):
                s = key.fileobj
                if received[s] is None:
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        raise OSError(err, f"connect to {address}: {os.strerror(err)}")
                    s.sendall(hello)   # small: fits in a fresh socket's send buffer
                    received[s] = b""
                    selector.modify(s, selectors.EVENT_READ)
                    continue
                chunk = s.recv(len(hello) - len(received[s]))
                if not chunk:
                    raise RuntimeError(f"connection closed after {len(received[s])} of {len(hello)} echoed bytes")
                received[s] += chunk
                if len(received[s]) == len(hello):
                    if received[s] != hello:
                        raise RuntimeError("echoed bytes differ from those sent")
                    selector.unregister(s)
                    del received[s]
                    if stalled:
                        s.send(os.urandom(STALL_BYTES))   # fits in the fresh send buffer; never read back
                    done.append(s)
    except BaseException:
        for s in done + list(received):
            s.close()
        raise
    finally:
        selector.close()
    return done


def hold(address, count, hello, stalled, pids_of, while_held=None):
    """Opens `count` connections, measures memory with them held (and calls while_held(), whose
    result is kept), closes them. pids_of() lists the proxy's processes (empty for direct)."""
    time.sleep(0.5)
    is_proxy = bool(pids_of())
    rss_before = rss_kib(pids_of())
    slab_before, tcp_before = kernel_memory_kib()
    start = time.monotonic()
    held = open_connections(address, count, hello, stalled)
    opened = time.monotonic() - start
    try:
        time.sleep(1)
        rss_held = rss_kib(pids_of())
        slab_held, tcp_held = kernel_memory_kib()
        during = while_held() if while_held else None
    finally:
        for s in held:
            s.close()
    time.sleep(1)   # let the closed connections' sockets go before the next measurement
    return {
        "connections": count, "opened_seconds": round(opened, 3),
        "rss_before_kib": rss_before, "rss_held_kib": rss_held,
        "kib_per_idle": (rss_held - rss_before) / count if is_proxy else None,
        "kernel_kib_per_idle": (slab_held - slab_before) / count,
        "tcp_mem_kib_per_idle": (tcp_held - tcp_before) / count,
        "while_held": during,
    }
