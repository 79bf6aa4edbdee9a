// synflood: a bounded TCP SYN flood for the XDP benchmark (bench/xdp/run).
//
//   synflood IFNAME DST_MAC SRC_IP DST_IP DST_PORT MAX_PACKETS MAX_SECONDS [SOURCES]
//
// Sends pre-built Ethernet/IPv4/TCP SYN frames out of IFNAME through an AF_PACKET socket
// (qdisc bypassed, sendmmsg batches), cycling the source port and, with SOURCES > 1, the
// source address over SOURCES consecutive addresses from SRC_IP (a flood from several hosts,
// or spoofed ones), until MAX_PACKETS were sent or MAX_SECONDS passed, whichever comes first. Prints one JSON object: packets sent, seconds,
// packets per second, and send calls refused by a full device queue. Only a benchmark's own
// veth in its own namespace should ever be named: the caller checks that.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { FRAME_COUNT = 1024, BATCH = 64, FRAME_BYTES = 60, FIRST_SOURCE_PORT = 20000 };

static uint16_t checksum_fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}

static uint32_t checksum_add(uint32_t sum, const void *data, size_t length) {
  const uint8_t *bytes = data;
  for (size_t i = 0; i + 1 < length; i += 2) sum += (uint32_t)(bytes[i] << 8 | bytes[i + 1]);
  if (length & 1) sum += (uint32_t)(bytes[length - 1] << 8);
  return sum;
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int parse_mac(const char *text, uint8_t mac[6]) {
  unsigned v[6];
  if (sscanf(text, "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6) return -1;
  for (int i = 0; i < 6; i++) {
    if (v[i] > 0xff) return -1;
    mac[i] = (uint8_t)v[i];
  }
  return 0;
}

static void build_frame(uint8_t *frame, const uint8_t dst_mac[6], const uint8_t src_mac[6],
                        struct in_addr src, struct in_addr dst, uint16_t source_port,
                        uint16_t dest_port, uint32_t sequence) {
  memset(frame, 0, FRAME_BYTES);
  struct ether_header *eth = (struct ether_header *)frame;
  memcpy(eth->ether_dhost, dst_mac, 6);
  memcpy(eth->ether_shost, src_mac, 6);
  eth->ether_type = htons(ETHERTYPE_IP);

  struct iphdr *ip = (struct iphdr *)(frame + sizeof *eth);
  ip->version = 4;
  ip->ihl = 5;
  ip->tot_len = htons(sizeof(struct iphdr) + sizeof(struct tcphdr));
  ip->id = htons((uint16_t)sequence);
  ip->ttl = 64;
  ip->protocol = IPPROTO_TCP;
  ip->saddr = src.s_addr;
  ip->daddr = dst.s_addr;
  ip->check = htons(checksum_fold(checksum_add(0, ip, sizeof *ip)));

  struct tcphdr *tcp = (struct tcphdr *)(frame + sizeof *eth + sizeof *ip);
  tcp->source = htons(source_port);
  tcp->dest = htons(dest_port);
  tcp->seq = htonl(sequence);
  tcp->doff = 5;
  tcp->syn = 1;
  tcp->window = htons(64240);
  struct {
    uint32_t src, dst;
    uint8_t zero, protocol;
    uint16_t length;
  } __attribute__((packed)) pseudo = {ip->saddr, ip->daddr, 0, IPPROTO_TCP, htons(sizeof *tcp)};
  uint32_t sum = checksum_add(0, &pseudo, sizeof pseudo);
  tcp->check = htons(checksum_fold(checksum_add(sum, tcp, sizeof *tcp)));
}

int main(int argc, char **argv) {
  if (argc != 8 && argc != 9) {
    fprintf(stderr, "usage: %s IFNAME DST_MAC SRC_IP DST_IP DST_PORT MAX_PACKETS MAX_SECONDS [SOURCES]\n",
            argv[0]);
    return 2;
  }
  const char *ifname = argv[1];
  uint8_t dst_mac[6], src_mac[6];
  struct in_addr src, dst;
  char *end;
  const long dest_port = strtol(argv[5], &end, 10);
  const unsigned long long max_packets = strtoull(argv[6], NULL, 10);
  const double max_seconds = strtod(argv[7], NULL);
  const long sources = argc == 9 ? strtol(argv[8], NULL, 10) : 1;
  if (sources < 1 || sources > FRAME_COUNT ||
      parse_mac(argv[2], dst_mac) || inet_pton(AF_INET, argv[3], &src) != 1 ||
      inet_pton(AF_INET, argv[4], &dst) != 1 || *end || dest_port < 1 || dest_port > 65535 ||
      max_packets == 0 || !(max_seconds > 0 && max_seconds <= 600)) {
    fprintf(stderr, "synflood: bad argument (MAC aa:bb:.., IPv4 addresses, port 1-65535, "
                    "packets > 0, 0 < seconds <= 600, 1 <= sources <= 1024)\n");
    return 2;
  }

  const int fd = socket(AF_PACKET, SOCK_RAW, 0);  // protocol 0: send only, receive nothing
  if (fd < 0) {
    perror("synflood: socket(AF_PACKET)");
    return 1;
  }
  struct ifreq ifr = {0};
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname);
  if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) {
    fprintf(stderr, "synflood: %s: %s\n", ifname, strerror(errno));
    return 1;
  }
  memcpy(src_mac, ifr.ifr_hwaddr.sa_data, 6);
  struct sockaddr_ll address = {.sll_family = AF_PACKET, .sll_ifindex = (int)if_nametoindex(ifname)};
  if (address.sll_ifindex == 0 || bind(fd, (struct sockaddr *)&address, sizeof address) < 0) {
    fprintf(stderr, "synflood: bind to %s: %s\n", ifname, strerror(errno));
    return 1;
  }
  // Straight to the driver: the qdisc would only add its own cost to the sender.
  const int one = 1;
  if (setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one) < 0)
    perror("synflood: PACKET_QDISC_BYPASS (continuing through the qdisc)");

  static uint8_t frames[FRAME_COUNT][FRAME_BYTES];
  static struct iovec vectors[FRAME_COUNT];
  static struct mmsghdr messages[FRAME_COUNT];
  for (int i = 0; i < FRAME_COUNT; i++) {
    const struct in_addr source = {htonl(ntohl(src.s_addr) + (uint32_t)(i % sources))};
    build_frame(frames[i], dst_mac, src_mac, source, dst, (uint16_t)(FIRST_SOURCE_PORT + i),
                (uint16_t)dest_port, 0x5eed0000u + (uint32_t)i);
    vectors[i] = (struct iovec){frames[i], FRAME_BYTES};
    messages[i].msg_hdr = (struct msghdr){.msg_iov = &vectors[i], .msg_iovlen = 1};
  }

  unsigned long long sent = 0, refused = 0;
  const double start = now_seconds();
  double elapsed = 0;
  int next = 0;
  while (sent < max_packets && elapsed < max_seconds) {
    unsigned long long want = max_packets - sent;
    if (want > BATCH) want = BATCH;
    const int n = sendmmsg(fd, &messages[next], (unsigned)want, 0);
    if (n > 0) {
      sent += (unsigned long long)n;
      next = (next + n) % (FRAME_COUNT - BATCH);
    } else if (errno == ENOBUFS || errno == EAGAIN) {
      refused++;
    } else if (errno != EINTR) {
      perror("synflood: sendmmsg");
      return 1;
    }
    elapsed = now_seconds() - start;
  }
  printf("{\"sent\": %llu, \"seconds\": %.6f, \"pps\": %.0f, \"refused_calls\": %llu}\n", sent,
         elapsed, elapsed > 0 ? (double)sent / elapsed : 0.0, refused);
  close(fd);
  return 0;
}
