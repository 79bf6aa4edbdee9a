#!/usr/bin/env python3
"""A small authoritative DNS server for tests (python3 standard library only).

Serves a zone described in JSON over UDP and TCP on 127.0.0.1 and ::1 (::1 is skipped with a
warning on stderr when the host has no IPv6 loopback), on one ephemeral port shared by all four
sockets.

Usage:
    python3 tests/support/dns_server.py --zone ZONE.json [--log QUERIES.log] [--exit-with-stdin]

It prints the port as the first line on stdout ("53535\\n", flushed) once every socket is bound,
then serves until SIGTERM/SIGINT, or, with --exit-with-stdin, until its stdin reaches EOF (give
it a pipe you never write to: when the test process dies, the server goes too).

Zone file (JSON), re-read whenever it changes (modification time, inode or size), so tests can change answers
(write the new file beside it and rename it over the old one; a bad new file is ignored):
    {
      "default_ttl": 300,
      "names": {
        "v4.test":     [{"type": "A", "data": "127.0.0.2", "ttl": 60}],
        "dual.test":   [{"type": "A", "data": "127.0.0.3"}, {"type": "AAAA", "data": "::1"}],
        "alias.test":  [{"type": "CNAME", "data": "v4.test", "ttl": 10}],
        "slow.test":   {"delay_ms": 300, "records": [{"type": "A", "data": "127.0.0.4"}]},
        "broken.test": "servfail",
        "refused.test": "refused",
        "silent.test": "drop",
        "spoofed.test": {"spoof_first": [{"type": "A", "data": "127.0.0.9"}],
                         "records": [{"type": "A", "data": "127.0.0.5"}]},
        "lying.test":  {"mangle": "truncated", "records": [{"type": "A", "data": "127.0.0.6"}]}
      }
    }
  - Names are matched case-insensitively, without a trailing dot.
  - A name absent from "names" gets NXDOMAIN; a present name without records of the asked
    type gets NOERROR with no answers (NODATA).
  - CNAMEs are followed inside the zone (at most 16 steps); every record of the chain is in the
    answer; a chain ending at an absent name gives NXDOMAIN with the CNAMEs in the answer.
  - "servfail" / "refused": that rcode for every type. "drop": queries are never answered.
  - "delay_ms": the answer is sent that much later (UDP and TCP).
  - "spoof_first": records sent first in an answer under another id (a spoofing attempt),
    immediately followed by the real answer.
  - "mangle": the answer is sent broken: "wrong_id" (another id, so it answers no query),
    "truncated" (its last 3 bytes cut off), "garbage" (the right id, then noise).
  - Addresses must belong to this host: 127.0.0.0/8, ::1, ::ffff:127.0.0.0/104, 0.0.0.0 or ::.
    Anything else is refused at load (exit status 2), so a test can never send traffic away.
  - An answer longer than 512 bytes over UDP (or the client's EDNS size) is sent truncated (TC),
    so the client retries over TCP.

Query log (--log FILE): one line per query received, flushed at once:
    "<udp|tcp> <TYPE> <lower-case name>\\n"   e.g. "udp AAAA dual.test"
Count the lines to count queries (A and AAAA are separate queries).

From python tests (e.g. the daemon's end-to-end tests), import this file and use the process
wrapper, which runs the server in a temporary directory and stops it on exit:
    sys.path.insert(0, "<repo>/tests/support"); from dns_server import DnsServerProcess
    with DnsServerProcess({"names": {"a.example.org": [{"type": "A", "data": "127.0.0.2"}]}}) as dns:
        dns.port                         # for `dns: servers: ["127.0.0.1:<port>"]`
        dns.queries("a.example.org")     # queries received for that name (any type)
        dns.queries("a.example.org", "AAAA")
        dns.set_zone({...})              # new answers from the next query on
"""

import argparse
import ipaddress
import json
import os
import select
import signal
import socket
import struct
import sys
import threading
import time

TYPES = {1: "A", 5: "CNAME", 16: "TXT", 28: "AAAA", 41: "OPT"}
TYPE_CODES = {name: code for code, name in TYPES.items()}
NOERROR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 2, 3, 4, 5
MAX_CNAME_STEPS = 16
MAX_TCP_CLIENTS = 64
MANGLES = (None, "wrong_id", "truncated", "garbage")


def local_address(text):
    address = ipaddress.ip_address(text)
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.version == 4:
        return address in ipaddress.ip_network("127.0.0.0/8") or address == ipaddress.ip_address("0.0.0.0")
    return address in (ipaddress.ip_address("::1"), ipaddress.ip_address("::"))


def normalise(name):
    name = name.lower()
    return name[:-1] if name.endswith(".") else name


class Zone:
    """The zone file, re-read when its mtime changes."""

    def __init__(self, path):
        self.path = path
        self.mtime = None
        self.names = {}
        self.lock = threading.Lock()
        self.reload_if_changed()

    def reload_if_changed(self):
        # The inode too: file times are only as fine as the kernel's clock tick, and a zone
        # renamed over the old one within the same tick would otherwise go unnoticed.
        status = os.stat(self.path)
        mtime = (status.st_mtime_ns, status.st_ino, status.st_size)
        with self.lock:
            if mtime == self.mtime:
                return
            with open(self.path) as zone_file:
                description = json.load(zone_file)
            default_ttl = int(description.get("default_ttl", 300))
            names = {}
            for name, entry in description.get("names", {}).items():
                if isinstance(entry, str):
                    if entry not in ("servfail", "refused", "drop"):
                        raise ValueError(f"{name}: unknown behaviour {entry!r}")
                    names[normalise(name)] = {"behaviour": entry, "records": [], "delay_ms": 0}
                    continue
                if isinstance(entry, list):
                    entry = {"records": entry}

                def parse_records(described):
                    records = []
                    for record in described:
                        rtype = record["type"].upper()
                        if rtype not in ("A", "AAAA", "CNAME", "TXT"):
                            raise ValueError(f"{name}: unsupported record type {rtype}")
                        data = record["data"]
                        if rtype == "A" and (ipaddress.ip_address(data).version != 4 or not local_address(data)):
                            raise ValueError(f"{name}: A {data} is not an address of this host")
                        if rtype == "AAAA" and (ipaddress.ip_address(data).version != 6 or not local_address(data)):
                            raise ValueError(f"{name}: AAAA {data} is not an address of this host")
                        records.append((rtype, data, int(record.get("ttl", default_ttl))))
                    return records

                mangle = entry.get("mangle")
                if mangle not in MANGLES:
                    raise ValueError(f"{name}: unknown mangle {mangle!r}")
                names[normalise(name)] = {"behaviour": None, "records": parse_records(entry.get("records", [])),
                                          "delay_ms": int(entry.get("delay_ms", 0)), "mangle": mangle,
                                          "spoof_first": parse_records(entry.get("spoof_first", []))}
            self.names = names
            self.mtime = mtime

    def get(self, name):
        with self.lock:
            return self.names.get(name)


def encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            raw = label.encode("ascii")
            out += bytes([len(raw)]) + raw
    return out + b"\0"


def decode_name(message, offset):
    """Returns (name, offset after it); follows compression pointers, bounded."""
    labels, jumps, end = [], 0, None
    while True:
        if offset >= len(message):
            raise ValueError("name runs past the message")
        length = message[offset]
        if length & 0xC0 == 0xC0:
            if offset + 1 >= len(message) or jumps > 16:
                raise ValueError("bad compression pointer")
            if end is None:
                end = offset + 2
            offset = ((length & 0x3F) << 8) | message[offset + 1]
            jumps += 1
            continue
        offset += 1
        if length == 0:
            break
        labels.append(message[offset:offset + length].decode("ascii", "replace"))
        offset += length
    return ".".join(labels), (end if end is not None else offset)


def rdata(rtype, data):
    if rtype == "A":
        return socket.inet_pton(socket.AF_INET, data)
    if rtype == "AAAA":
        return socket.inet_pton(socket.AF_INET6, data)
    if rtype == "CNAME":
        return encode_name(data)
    raw = data.encode()  # TXT: one character-string per 255 bytes
    return b"".join(bytes([len(raw[i:i + 255])]) + raw[i:i + 255] for i in range(0, max(len(raw), 1), 255))


def resource_record(owner, rtype, data, ttl):
    body = rdata(rtype, data)
    return encode_name(owner) + struct.pack("!HHIH", TYPE_CODES[rtype], 1, ttl, len(body)) + body


class Server:
    def __init__(self, zone, log_path):
        self.zone = zone
        self.log = open(log_path, "a", buffering=1) if log_path else None
        self.log_lock = threading.Lock()

    def record_query(self, transport, qtype, name):
        if self.log:
            with self.log_lock:
                self.log.write(f"{transport} {TYPES.get(qtype, str(qtype))} {name}\n")
                self.log.flush()

    def answer(self, query, transport, udp_limit=512):
        """Returns (response bytes or None to stay silent, delay in seconds)."""
        if len(query) < 12:
            return None, 0
        ident, flags, qdcount, _, _, arcount = struct.unpack("!HHHHHH", query[:12])
        if flags & 0x8000 or qdcount < 1:
            return None, 0
        try:
            qname, offset = decode_name(query, 12)
            qtype, qclass = struct.unpack("!HH", query[offset:offset + 4])
        except (ValueError, struct.error):
            return None, 0
        question = query[12:offset + 4]
        offset += 4
        for _ in range(arcount):  # the EDNS OPT record carries the client's UDP size
            try:
                _, offset = decode_name(query, offset)
                rtype, rclass, _, rdlength = struct.unpack("!HHIH", query[offset:offset + 10])
            except (ValueError, struct.error):
                break
            if rtype == 41:
                udp_limit = max(512, rclass)
            offset += 10 + rdlength

        name = normalise(qname)
        self.record_query(transport, qtype, name)
        try:
            self.zone.reload_if_changed()
        except (OSError, ValueError, KeyError, TypeError) as error:
            print(f"dns_server: zone not reloaded, the previous one stays: {error}", file=sys.stderr)

        opcode = (flags >> 11) & 0xF
        rcode, answers, delay = NOERROR, [], 0
        entry = self.zone.get(name)
        if opcode != 0 or qclass != 1:
            rcode = NOTIMP
        elif entry is None:
            rcode = NXDOMAIN
        else:
            delay = entry["delay_ms"] / 1000
            behaviour = entry["behaviour"]
            if behaviour == "drop":
                return None, 0
            if behaviour == "servfail":
                rcode = SERVFAIL
            elif behaviour == "refused":
                rcode = REFUSED
            else:
                owner = name
                for _ in range(MAX_CNAME_STEPS):
                    cnames = [r for r in entry["records"] if r[0] == "CNAME"]
                    if cnames and qtype != TYPE_CODES["CNAME"]:
                        target = cnames[0][1]
                        answers.append(resource_record(owner, "CNAME", target, cnames[0][2]))
                        owner = normalise(target)
                        entry = self.zone.get(owner)
                        if entry is None:
                            rcode = NXDOMAIN
                            break
                        if entry["behaviour"] is not None:
                            rcode = SERVFAIL
                            break
                        continue
                    answers.extend(resource_record(owner, rtype, data, ttl)
                                   for rtype, data, ttl in entry["records"]
                                   if TYPE_CODES[rtype] == qtype)
                    break

        def message(answer_records, truncated):
            # QR, AA, RD copied, RA; TC when the UDP answer does not fit.
            response_flags = 0x8000 | 0x0400 | (flags & 0x0100) | 0x0080 | (0x0200 if truncated else 0) | rcode
            header = struct.pack("!HHHHHH", ident, response_flags, 1, len(answer_records), 0, 0)
            return header + question + b"".join(answer_records)

        response = message(answers, False)
        if transport == "udp" and len(response) > udp_limit:
            response = message([], True)
        mangle = entry.get("mangle") if entry else None
        if mangle == "wrong_id":
            response = struct.pack("!H", ident ^ 0x5A5A) + response[2:]
        elif mangle == "truncated":
            response = response[:max(12, len(response) - 3)]
        elif mangle == "garbage":  # the right id, then noise (the same noise every time)
            response = response[:2] + bytes((i * 37 + 11) & 0xFF for i in range(max(len(response) - 2, 40)))
        return response, delay

    def messages(self, query, transport):
        """answer(), preceded by a spoofed answer under another id where the zone asks for one
        (spoof_first). Returns (messages to send in order, delay before them)."""
        response, delay = self.answer(query, transport)
        if response is None:
            return [], delay
        try:
            qname, offset = decode_name(query, 12)
            qtype = struct.unpack("!H", query[offset:offset + 2])[0]
        except (ValueError, struct.error):
            return [response], delay
        entry = self.zone.get(normalise(qname))
        if not entry or not entry.get("spoof_first"):
            return [response], delay
        owner = normalise(qname)
        records = [resource_record(owner, rtype, data, ttl) for rtype, data, ttl in entry["spoof_first"]
                   if TYPE_CODES[rtype] == qtype]
        ident, flags = struct.unpack("!HH", response[:4])
        header = struct.pack("!HHHHHH", ident ^ 0x5A5A, flags & ~0x020F, 1, len(records), 0, 0)
        return [header + query[12:offset + 4] + b"".join(records), response], delay


def serve_udp(server, sock, stop):
    while not stop.is_set():
        readable, _, _ = select.select([sock], [], [], 0.2)
        if not readable:
            continue
        try:
            query, peer = sock.recvfrom(65535)
        except OSError:
            continue
        responses, delay = server.messages(query, "udp")
        if not responses:
            continue

        def send(responses=responses, peer=peer):
            for response in responses:
                sock.sendto(response, peer)
        if delay:
            threading.Timer(delay, send).start()
        else:
            send()


def serve_tcp_client(server, conn, stop):
    with conn:
        conn.settimeout(10)
        buffer = b""
        while not stop.is_set():
            try:
                chunk = conn.recv(65535)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            while len(buffer) >= 2:
                length = struct.unpack("!H", buffer[:2])[0]
                if len(buffer) < 2 + length:
                    break
                query, buffer = buffer[2:2 + length], buffer[2 + length:]
                responses, delay = server.messages(query, "tcp")
                if not responses:
                    continue
                if delay:
                    time.sleep(delay)
                try:
                    conn.sendall(b"".join(struct.pack("!H", len(r)) + r for r in responses))
                except OSError:
                    return


def serve_tcp(server, sock, stop):
    clients = []
    while not stop.is_set():
        readable, _, _ = select.select([sock], [], [], 0.2)
        if not readable:
            continue
        try:
            conn, _ = sock.accept()
        except OSError:
            continue
        clients = [c for c in clients if c.is_alive()]
        if len(clients) >= MAX_TCP_CLIENTS:
            conn.close()
            continue
        client = threading.Thread(target=serve_tcp_client, args=(server, conn, stop), daemon=True)
        client.start()
        clients.append(client)


def bind_all():
    """Binds UDP+TCP on 127.0.0.1 and ::1 to one free port; returns (port, sockets)."""
    for _ in range(50):
        first = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        first.bind(("127.0.0.1", 0))
        port = first.getsockname()[1]
        sockets = [("udp", first)]
        try:
            tcp4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(("tcp", tcp4))
            tcp4.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp4.bind(("127.0.0.1", port))
            tcp4.listen(16)
        except OSError:
            for _, sock in sockets:
                sock.close()
            continue
        try:
            udp6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            tcp6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            tcp6.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        except OSError as error:
            print(f"dns_server: no IPv6 sockets ({error}); serving 127.0.0.1 only", file=sys.stderr)
            return port, sockets
        try:
            udp6.bind(("::1", port))
            tcp6.bind(("::1", port))
            tcp6.listen(16)
        except OSError as error:
            udp6.close()
            tcp6.close()
            if error.errno == 99:  # EADDRNOTAVAIL: no ::1 on this host
                print("dns_server: ::1 unavailable; serving 127.0.0.1 only", file=sys.stderr)
                return port, sockets
            for _, sock in sockets:
                sock.close()
            continue
        return port, sockets + [("udp", udp6), ("tcp", tcp6)]
    raise SystemExit("dns_server: no free port for UDP and TCP on loopback")


class DnsServerProcess:
    """This server as a child process with its zone and query log in a temporary directory."""

    def __init__(self, zone):
        import subprocess
        import tempfile
        self._directory = tempfile.TemporaryDirectory(prefix="snisplice-dns-")
        self.zone_path = os.path.join(self._directory.name, "zone.json")
        self.log_path = os.path.join(self._directory.name, "queries.log")
        self.set_zone(zone)
        self._process = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--zone", self.zone_path,
             "--log", self.log_path, "--exit-with-stdin"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        ready, _, _ = select.select([self._process.stdout], [], [], 10)
        line = self._process.stdout.readline() if ready else b""
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError("dns_server.py did not start (see its stderr)")
        self.port = int(line)

    def set_zone(self, zone):
        staged = self.zone_path + ".new"
        with open(staged, "w") as zone_file:
            json.dump(zone, zone_file)
        os.replace(staged, self.zone_path)

    def queries(self, name, qtype=None):
        try:
            with open(self.log_path) as log:
                lines = [line.split() for line in log]
        except FileNotFoundError:
            return 0
        return sum(1 for fields in lines if len(fields) == 3 and fields[2] == normalise(name)
                   and (qtype is None or fields[1] == qtype))

    def stop(self):
        process = getattr(self, "_process", None)
        if process and process.poll() is None:
            process.stdin.close()
            process.terminate()
            process.wait(10)
        if process:
            process.stdout.close()
        self._directory.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.stop()


def wait_for_stdin_eof(stop):
    # os.read, not sys.stdin: a buffered reader blocked in a daemon thread aborts the interpreter
    # at exit.
    while os.read(0, 4096):
        pass
    stop.set()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--zone", required=True, help="zone description (JSON)")
    parser.add_argument("--log", help="append one line per query to this file")
    parser.add_argument("--exit-with-stdin", action="store_true", help="exit when stdin reaches EOF")
    args = parser.parse_args()

    try:
        zone = Zone(args.zone)
    except (OSError, ValueError, KeyError, TypeError) as error:
        print(f"dns_server: bad zone {args.zone}: {error}", file=sys.stderr)
        sys.exit(2)
    server = Server(zone, args.log)
    port, sockets = bind_all()
    stop = threading.Event()

    def on_signal(*_):
        # Not stop.set(): a handler runs in the main thread, which may hold the Event's lock in
        # stop.wait(); setting it from there deadlocked (seen: SIGTERM as stdin reached EOF).
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    threads = [threading.Thread(target=serve_udp if kind == "udp" else serve_tcp,
                                args=(server, sock, stop), daemon=True) for kind, sock in sockets]
    for thread in threads:
        thread.start()
    print(port, flush=True)
    if args.exit_with_stdin:
        threading.Thread(target=wait_for_stdin_eof, args=(stop,), daemon=True).start()
    try:
        while not stop.wait(0.2):
            pass
    except SystemExit:
        pass
    for _, sock in sockets:
        sock.close()


if __name__ == "__main__":
    main()
