#!/usr/bin/env python3
"""Bulk TCP transfer for the XDP benchmark (bench/xdp/run).

  bulk.py sink LISTEN_IP PORT RESULTS_FILE MAX_SECONDS
      accepts connections one after another, reads each to EOF and appends one JSON line per
      connection to RESULTS_FILE: bytes received and seconds from its first to its last byte.
  bulk.py send SOURCE_IP TARGET_IP PORT SNI SECONDS
      connects from SOURCE_IP, sends a real ClientHello for SNI (so the proxy routes it), then
      streams 256 KiB writes for SECONDS, half-closes and waits (bounded) for the peer's EOF.

Goodput is measured at the receiver. Both ends are bounded in time.
"""
import contextlib
import json
import socket
import ssl
import sys
import time

CHUNK = 256 * 1024


def client_hello(server_name):
    """A real ClientHello from OpenSSL, built without any network."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def sink(listen_ip, port, results_path, max_seconds):
    deadline = time.monotonic() + max_seconds
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((listen_ip, port))
    listener.listen(16)
    buffer = bytearray(1 << 20)
    while time.monotonic() < deadline:
        listener.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            conn, _ = listener.accept()
        except socket.timeout:
            break
        conn.settimeout(30)
        received, first, last = 0, None, None
        with conn:
            try:
                while True:
                    n = conn.recv_into(buffer)
                    if n == 0:
                        break
                    last = time.monotonic()
                    first = first or last
                    received += n
            except OSError as e:
                print(f"sink: {e}", file=sys.stderr)
        seconds = (last - first) if first and last else 0.0
        with open(results_path, "a") as results:
            results.write(json.dumps({"bytes": received, "seconds": seconds}) + "\n")


def send(source_ip, target_ip, port, sni, seconds):
    payload = memoryview(bytes(CHUNK))
    sent, reset = 0, False
    with socket.create_connection((target_ip, port), timeout=10, source_address=(source_ip, 0)) as s:
        s.sendall(client_hello(sni))
        deadline = time.monotonic() + seconds
        try:
            while time.monotonic() < deadline:
                s.sendall(payload)
                sent += CHUNK
            s.shutdown(socket.SHUT_WR)
        except (ConnectionResetError, BrokenPipeError):
            reset = True  # the proxy aborted the transfer: reported, not hidden
        s.settimeout(30)
        with contextlib.suppress(OSError):
            while s.recv(65536):
                pass
    print(json.dumps({"sent": sent, "reset": reset}))


def main(argv):
    if len(argv) == 5 and argv[0] == "sink":
        sink(argv[1], int(argv[2]), argv[3], float(argv[4]))
    elif len(argv) == 6 and argv[0] == "send":
        send(argv[1], argv[2], int(argv[3]), argv[4], float(argv[5]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
