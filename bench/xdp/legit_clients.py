#!/usr/bin/env python3
"""Legitimate clients for the SYN flood measurement (tests/e2e/test_syn_flood.py,
docs/syn-flood.md): one thread per source address, each opening connections one after another
at a paced rate, sending a ClientHello and waiting for the backend's "ready" line.

  legit_clients.py SERVER PORT HELLO_HEX SECONDS RATE_PER_SOURCE SOURCE...

RATE_PER_SOURCE 0 turns them into a connection flood instead: each thread connects and closes
again as fast as it can, sending nothing (what "served" then counts is completed handshakes).
Prints one JSON object: attempts, served (the backend answered), served_per_second, connect
time percentiles in ms (SYN sent to connect() returning, i.e. the handshake, SYN retransmits
included) and failures by stage and exception name ("connect:TimeoutError"). Run it inside
the clients' network namespace."""
import json
import socket
import sys
import threading
import time


def client(source, server, port, hello, deadline, interval, results, lock):
    """interval None: the connection flood (no pacing, no hello)."""
    next_start = time.monotonic()
    while True:
        now = time.monotonic()
        if now >= deadline:
            return
        if interval is not None:
            if next_start > now:
                time.sleep(next_start - now)
            next_start += interval
        outcome, connect_ms, stage = "served", None, "connect"
        s = socket.socket(socket.AF_INET6 if ":" in server else socket.AF_INET)
        try:
            s.settimeout(max(0.05, min(3.0, deadline + 1.0 - time.monotonic())))
            s.bind((source, 0))
            started = time.monotonic()
            s.connect((server, port))
            connect_ms = (time.monotonic() - started) * 1000
            stage = "reply"
            if interval is not None:
                s.sendall(hello)
                if s.recv(6) != b"ready\n":
                    outcome = "reply:closed"
        except OSError as e:
            outcome = f"{stage}:{type(e).__name__}"
        finally:
            s.close()
        with lock:
            results.append((outcome, connect_ms))


def percentile(values, fraction):
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))], 3)


def main():
    server, port, hello_hex, seconds, rate = sys.argv[1:6]
    sources = sys.argv[6:]
    seconds, rate = float(seconds), float(rate)
    if not sources or not 0 < seconds <= 120 or not 0 <= rate <= 10000:
        sys.exit("usage: legit_clients.py SERVER PORT HELLO_HEX SECONDS(<=120) RATE_PER_SOURCE SOURCE...")
    results, lock = [], threading.Lock()
    start = time.monotonic()
    deadline = start + seconds
    threads = [threading.Thread(target=client, args=(source, server, int(port), bytes.fromhex(hello_hex),
                                                     deadline, 1.0 / rate if rate else None, results, lock))
               for source in sources]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    served = [ms for outcome, ms in results if outcome == "served"]
    failures = {}
    for outcome, _ in results:
        if outcome != "served":
            failures[outcome] = failures.get(outcome, 0) + 1
    print(json.dumps({
        "attempts": len(results), "served": len(served), "seconds": round(elapsed, 3),
        "served_per_second": round(len(served) / elapsed, 1),
        "connect_ms_p50": percentile(served, 0.5), "connect_ms_p90": percentile(served, 0.9),
        "connect_ms_p99": percentile(served, 0.99), "failures": failures}))


if __name__ == "__main__":
    main()
