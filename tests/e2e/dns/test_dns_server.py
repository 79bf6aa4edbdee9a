"""tests/support/dns_server.py, the DNS server the resolver's and the daemon's tests rely on:
every behaviour its usage promises, checked with raw queries over UDP and TCP on loopback.

Run: python3 -m unittest -v test_dns_server   (from tests/e2e/dns)
"""

import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "support"))
from dns_server import DnsServerProcess  # noqa: E402

A, CNAME, AAAA = 1, 5, 28
NOERROR, SERVFAIL, NXDOMAIN, REFUSED = 0, 2, 3, 5


def has_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


def build_query(name, qtype, ident=0x4242):
    labels = b"".join(bytes([len(label)]) + label.encode() for label in name.split("."))
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + labels + b"\0" + struct.pack("!HH", qtype, 1)


def skip_name(message, offset):
    while True:
        length = message[offset]
        if length & 0xC0 == 0xC0:
            return offset + 2
        offset += 1 + length
        if length == 0:
            return offset


def parse_response(message):
    """Returns (ident, flags, [(type, ttl, rdata)])."""
    ident, flags, qdcount, ancount, _, _ = struct.unpack("!HHHHHH", message[:12])
    offset = 12
    for _ in range(qdcount):
        offset = skip_name(message, offset) + 4
    records = []
    for _ in range(ancount):
        offset = skip_name(message, offset)
        rtype, _, ttl, length = struct.unpack("!HHIH", message[offset:offset + 10])
        offset += 10
        records.append((rtype, ttl, message[offset:offset + length]))
        offset += length
    return ident, flags, records


def udp_query(port, name, qtype, host="127.0.0.1", timeout=1.0):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(build_query(name, qtype), (host, port))
        try:
            return parse_response(sock.recv(65535))
        except socket.timeout:
            return None


def tcp_query(port, name, qtype, host="127.0.0.1"):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        sock.connect((host, port))
        query = build_query(name, qtype)
        sock.sendall(struct.pack("!H", len(query)) + query)
        data = b""
        while len(data) < 2 or len(data) < 2 + struct.unpack("!H", data[:2])[0]:
            chunk = sock.recv(65535)
            if not chunk:
                break
            data += chunk
        return parse_response(data[2:])


ZONE = {
    "default_ttl": 120,
    "names": {
        "v4.test": [{"type": "A", "data": "127.0.0.2", "ttl": 60}],
        "v6.test": [{"type": "AAAA", "data": "::1"}],
        "alias.test": [{"type": "CNAME", "data": "v4.test", "ttl": 10}],
        "slow.test": {"delay_ms": 300, "records": [{"type": "A", "data": "127.0.0.4"}]},
        "broken.test": "servfail",
        "refused.test": "refused",
        "silent.test": "drop",
        "big.test": [{"type": "A", "data": f"127.0.4.{i}"} for i in range(1, 41)],
    },
}


class DnsServerTest(unittest.TestCase):
    def setUp(self):
        self.dns = DnsServerProcess(ZONE)
        self.addCleanup(self.dns.stop)

    def test_a_and_aaaa_with_their_ttls(self):
        _, flags, records = udp_query(self.dns.port, "V4.test", A)
        self.assertEqual(flags & 0xF, NOERROR)
        self.assertEqual(records, [(A, 60, socket.inet_aton("127.0.0.2"))])
        _, _, records = udp_query(self.dns.port, "v6.test", AAAA)
        self.assertEqual(records, [(AAAA, 120, socket.inet_pton(socket.AF_INET6, "::1"))])
        _, flags, records = udp_query(self.dns.port, "v6.test", A)  # NODATA
        self.assertEqual((flags & 0xF, records), (NOERROR, []))

    def test_cname_chain_is_followed(self):
        _, _, records = udp_query(self.dns.port, "alias.test", A)
        self.assertEqual([(rtype, ttl) for rtype, ttl, _ in records], [(CNAME, 10), (A, 60)])

    def test_nxdomain_servfail_refused_and_silence(self):
        self.assertEqual(udp_query(self.dns.port, "absent.test", A)[1] & 0xF, NXDOMAIN)
        self.assertEqual(udp_query(self.dns.port, "broken.test", AAAA)[1] & 0xF, SERVFAIL)
        self.assertEqual(udp_query(self.dns.port, "refused.test", A)[1] & 0xF, REFUSED)
        self.assertIsNone(udp_query(self.dns.port, "silent.test", A, timeout=0.5))

    def test_delay(self):
        started = time.monotonic()
        self.assertIsNotNone(udp_query(self.dns.port, "slow.test", A))
        self.assertGreaterEqual(time.monotonic() - started, 0.29)

    def test_large_answer_truncated_over_udp_whole_over_tcp(self):
        _, flags, records = udp_query(self.dns.port, "big.test", A)
        self.assertTrue(flags & 0x0200)
        self.assertEqual(records, [])
        _, flags, records = tcp_query(self.dns.port, "big.test", A)
        self.assertFalse(flags & 0x0200)
        self.assertEqual(len(records), 40)

    @unittest.skipUnless(has_ipv6_loopback(), "no ::1 on this host")
    def test_ipv6_loopback_udp_and_tcp(self):
        self.assertEqual(len(udp_query(self.dns.port, "v4.test", A, host="::1")[2]), 1)
        self.assertEqual(len(tcp_query(self.dns.port, "v4.test", A, host="::1")[2]), 1)

    def test_query_log_counts_each_query(self):
        udp_query(self.dns.port, "v4.test", A)
        udp_query(self.dns.port, "v4.test", AAAA)
        tcp_query(self.dns.port, "v4.test", A)
        self.assertEqual(self.dns.queries("v4.test"), 3)
        self.assertEqual(self.dns.queries("V4.test.", "A"), 2)
        self.assertEqual(self.dns.queries("absent.test"), 0)

    def test_zone_changes_apply_to_the_next_query(self):
        self.dns.set_zone({"names": {"v4.test": [{"type": "A", "data": "127.0.0.99"}]}})
        _, _, records = udp_query(self.dns.port, "v4.test", A)
        self.assertEqual(records[0][2], socket.inet_aton("127.0.0.99"))


class ZoneRefusalTest(unittest.TestCase):
    def test_addresses_off_this_host_are_refused(self):
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "support", "dns_server.py")
        for address, rtype in (("10.0.0.1", "A"), ("192.168.1.1", "A"), ("169.254.169.254", "A"),
                               ("8.8.8.8", "A"), ("2001:db8::1", "AAAA"), ("::ffff:10.0.0.1", "AAAA")):
            with self.subTest(address=address), tempfile.NamedTemporaryFile("w", suffix=".json") as zone:
                zone.write('{"names": {"x.test": [{"type": "%s", "data": "%s"}]}}' % (rtype, address))
                zone.flush()
                result = subprocess.run([sys.executable, script, "--zone", zone.name],
                                        capture_output=True, text=True, timeout=10)
                self.assertEqual(result.returncode, 2)
                self.assertIn("not an address of this host", result.stderr)



class MisbehaviourTest(unittest.TestCase):
    """spoof_first and mangle: the lies a resolver must survive."""

    def setUp(self):
        a = [{"type": "A", "data": "127.0.0.5"}]
        self.dns = DnsServerProcess({"names": {
            "spoofed.test": {"spoof_first": [{"type": "A", "data": "127.0.0.9"}], "records": a},
            "wrongid.test": {"mangle": "wrong_id", "records": a},
            "truncated.test": {"mangle": "truncated", "records": a},
            "garbage.test": {"mangle": "garbage", "records": a},
        }})
        self.addCleanup(self.dns.stop)

    def raw_udp(self, name, count):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(1.0)
            sock.sendto(build_query(name, A), ("127.0.0.1", self.dns.port))
            return [sock.recv(65535) for _ in range(count)]

    def test_spoofed_answer_under_another_id_then_the_real_one(self):
        for transport in ("udp", "tcp"):
            with self.subTest(transport=transport):
                if transport == "udp":
                    spoof, real = (parse_response(m) for m in self.raw_udp("spoofed.test", 2))
                else:
                    with socket.create_connection(("127.0.0.1", self.dns.port), timeout=2) as sock:
                        query = build_query("spoofed.test", A)
                        sock.sendall(struct.pack("!H", len(query)) + query)
                        messages = []
                        for _ in range(2):
                            length = struct.unpack("!H", sock.recv(2, socket.MSG_WAITALL))[0]
                            messages.append(parse_response(sock.recv(length, socket.MSG_WAITALL)))
                    spoof, real = messages
                self.assertNotEqual(spoof[0], 0x4242)
                self.assertEqual(spoof[2][0][2], socket.inet_aton("127.0.0.9"))
                self.assertEqual(real[0], 0x4242)
                self.assertEqual([(rtype, data) for rtype, _, data in real[2]], [(A, socket.inet_aton("127.0.0.5"))])

    def test_mangled_answers(self):
        whole = self.raw_udp("spoofed.test", 2)[1]
        wrong = self.raw_udp("wrongid.test", 1)[0]
        self.assertNotEqual(struct.unpack("!H", wrong[:2])[0], 0x4242)
        self.assertEqual(parse_response(wrong)[2][0][2], socket.inet_aton("127.0.0.5"))
        truncated = self.raw_udp("truncated.test", 1)[0]
        self.assertEqual(struct.unpack("!H", truncated[:2])[0], 0x4242)
        # The name is written twice (question and answer owner), uncompressed.
        self.assertEqual(len(truncated), len(wrong) + 2 * (len("truncated") - len("wrongid")) - 3)
        garbage = self.raw_udp("garbage.test", 1)[0]
        self.assertEqual(struct.unpack("!H", garbage[:2])[0], 0x4242)
        self.assertNotEqual(garbage[2:4], whole[2:4])
        self.assertEqual(garbage, self.raw_udp("garbage.test", 1)[0])   # the same noise each time

    def test_unknown_mangle_is_refused(self):
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "support", "dns_server.py")
        with tempfile.NamedTemporaryFile("w", suffix=".json") as zone:
            zone.write('{"names": {"x.test": {"mangle": "sometimes", "records": []}}}')
            zone.flush()
            result = subprocess.run([sys.executable, script, "--zone", zone.name],
                                    capture_output=True, text=True, timeout=10)
        self.assertEqual(result.returncode, 2)
        self.assertIn("unknown mangle", result.stderr)

if __name__ == "__main__":
    unittest.main()
