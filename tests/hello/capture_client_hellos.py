#!/usr/bin/env python3
"""Captures ClientHellos from real TLS clients and checks them with hello_capture_check.

A listener on 127.0.0.1 reads each client's records until its ClientHello is complete, saves
exactly those bytes, and hangs up. Clients: openssl s_client (plain, multi-record with
-max_send_frag 512, TLS 1.2 only, no SNI, mixed-case SNI), curl, gnutls-cli, Python's ssl
module and, when a JDK is installed, Java's JSSE. The manifest of captures and expected SNI/ALPN goes to hello_capture_check.

usage: capture_client_hellos.py --checker PATH --out DIR
"""
import argparse
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading

ACCEPT_TIMEOUT_S = 15
CLIENT_TIMEOUT_S = 15
MAX_CAPTURE_BYTES = 70000  # beyond any hello we accept (64 KiB plus record headers)
LONG_ALPN = [f"proto-{i:02d}-" + "x" * 32 for i in range(12)]  # pushes a hello past 512 bytes


def read_exact(conn, n):
    data = bytearray()
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise EOFError(f"client closed after {len(data)} of {n} bytes")
        data += chunk
    return bytes(data)


def read_client_hello(conn):
    """Returns (bytes through the record completing the ClientHello, number of records)."""
    data = bytearray()
    handshake = bytearray()
    records = 0
    while len(data) < MAX_CAPTURE_BYTES:
        header = read_exact(conn, 5)
        if header[0] != 22:
            raise ValueError(f"record type {header[0]} is not handshake")
        fragment = read_exact(conn, int.from_bytes(header[3:5], "big"))
        data += header + fragment
        handshake += fragment
        records += 1
        if len(handshake) >= 4 and len(handshake) >= 4 + int.from_bytes(handshake[1:4], "big"):
            return bytes(data), records
    raise ValueError("ClientHello larger than any accepted size")


def python_ssl_client(port, host, alpn):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(alpn)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT_S) as sock:
            with context.wrap_socket(sock, server_hostname=host):
                pass
    except (OSError, ssl.SSLError):
        pass  # the listener hangs up after the hello: the handshake is expected to fail


def clients(port):
    """(name, command list or callable, expected host, expected ALPN list, min records)."""
    addr = f"127.0.0.1:{port}"
    s_client = ["openssl", "s_client", "-connect", addr]
    return [
        ("openssl", s_client + ["-servername", "openssl.example.test", "-alpn", "h2,http/1.1"],
         "openssl.example.test", ["h2", "http/1.1"], 1),
        ("openssl_max_send_frag_512",
         s_client + ["-max_send_frag", "512", "-servername", "frag.example.test",
                     "-alpn", ",".join(LONG_ALPN)],
         "frag.example.test", LONG_ALPN, 2),
        ("openssl_tls12", s_client + ["-tls1_2", "-servername", "tls12.example.test"],
         "tls12.example.test", [], 1),
        ("openssl_no_sni", s_client + ["-noservername", "-alpn", "acme-tls/1"], "", ["acme-tls/1"], 1),
        ("openssl_mixed_case_sni", s_client + ["-servername", "MiXeD.Example.TEST"],
         "mixed.example.test", [], 1),
        ("curl", ["curl", "-sk", "--max-time", str(CLIENT_TIMEOUT_S), "--resolve",
                  f"curl.example.test:{port}:127.0.0.1", f"https://curl.example.test:{port}/"],
         "curl.example.test", ["h2", "http/1.1"], 1),
        ("gnutls", ["gnutls-cli", "--insecure", "-p", str(port), "--sni-hostname",
                    "gnutls.example.test", "--alpn", "h2", "--alpn", "http/1.1", "127.0.0.1"],
         "gnutls.example.test", ["h2", "http/1.1"], 1),
        ("python_ssl", lambda: python_ssl_client(port, "python.example.test", ["h2", "http/1.1"]),
         "python.example.test", ["h2", "http/1.1"], 1),
    ] + java_clients(port)


def java_clients(port):
    if shutil.which("java") is None:
        print("note: java not installed, no JSSE capture")
        return []
    source = os.path.join(os.path.dirname(os.path.abspath(__file__)), "JavaTlsClient.java")
    return [("java_jsse", ["java", source, str(port), "java.example.test", "h2,http/1.1"],
             "java.example.test", ["h2", "http/1.1"], 1)]


def capture(listener, client):
    """Runs one client against the listener; returns (bytes, records)."""
    if callable(client):
        runner = threading.Thread(target=client, daemon=True)
        runner.start()
        process = None
    else:
        process = subprocess.Popen(client, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
    try:
        listener.settimeout(ACCEPT_TIMEOUT_S)
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(CLIENT_TIMEOUT_S)
            return read_client_hello(conn)
    finally:
        if process is not None:
            try:
                process.wait(timeout=CLIENT_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        else:
            runner.join(CLIENT_TIMEOUT_S)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checker", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    missing = [tool for tool in ("openssl", "curl", "gnutls-cli") if shutil.which(tool) is None]
    if missing:
        print(f"SKIP: client programs not installed: {', '.join(missing)}")
        return 77

    os.makedirs(args.out, exist_ok=True)
    manifest_lines = []
    failures = []
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        port = listener.getsockname()[1]
        for name, client, host, alpn, min_records in clients(port):
            try:
                data, records = capture(listener, client)
            except (OSError, ValueError, EOFError) as error:
                failures.append(f"{name}: no ClientHello captured ({error})")
                continue
            if records < min_records:
                failures.append(f"{name}: {records} record(s), expected at least {min_records}")
            path = os.path.join(args.out, f"{name}.bin")
            with open(path, "wb") as f:
                f.write(data)
            print(f"captured {name}: {len(data)} bytes in {records} record(s)")
            manifest_lines.append(f"{path}\t{host}\t{','.join(alpn)}\n")

    manifest = os.path.join(args.out, "manifest.tsv")
    with open(manifest, "w") as f:
        f.writelines(manifest_lines)
    checked = subprocess.run([args.checker, manifest], timeout=300)
    for failure in failures:
        print(f"FAIL  {failure}")
    return 1 if failures or checked.returncode != 0 else 0


if __name__ == "__main__":
    sys.exit(main())
