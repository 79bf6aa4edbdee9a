#pragma once
/* ABI of the in-kernel splice (ebpf/splice.bpf.c), shared with its C++ owner
 * (proxy/bpf/splice_engine.*). Both sides include this header; nothing here is defined twice.
 *
 * Maps:
 *   splice_peers  SOCKHASH  key: __u64 socket cookie  value: the socket spliced to it.
 *                 Each socket is stored under its PEER's cookie, so the verdict program finds
 *                 the destination of an skb with one lookup keyed by the receiving socket's
 *                 own cookie (bpf_get_socket_cookie(skb)). The verdict is attached here too:
 *                 a socket in this map has what it receives forwarded (the key does not
 *                 matter for that), so one entry per socket serves both roles. Between the
 *                 two inserts of a pair the first socket has the verdict but no peer yet: the
 *                 backend goes first (it has nothing to send before the client's bytes it
 *                 has not been sent), and whatever it receives then is passed (passed_bytes).
 *   splice_stats  HASH      key: __u64 socket cookie  value: struct splice_sock_stats.
 *                 Created (zeroed) and deleted only by userspace, around the sockhash
 *                 entries; the program only updates entries that exist.
 *   splice_control HASH     key: __u64 socket cookie  value: struct splice_control.
 *                 Written only by userspace (in place, under the value's lock), read only
 *                 by the verdict (under the lock). Made by the pair's first pause (the verdict
 *                 redirects when a socket has none) and deleted with splice_stats.
 * All three maps are sized at load time (bpf_map__set_max_entries) from the daemon's socket
 * budget; SPLICE_DEFAULT_MAX_SOCKETS is what the object file declares. */
#include <linux/bpf.h>
#include <linux/types.h>

#ifdef __cplusplus
#define SPLICE_ABI_ASSERT(expr, msg) static_assert(expr, msg)
#else
#define SPLICE_ABI_ASSERT(expr, msg) _Static_assert(expr, msg)
#endif

/* Two entries per spliced pair. `ulimit -Hn` caps a process at ~20000 fds here, so 65536
 * sockets leaves headroom for several processes sharing nothing but the object file. */
#define SPLICE_DEFAULT_MAX_SOCKETS 65536

/* Where one repeated stretch sits in a direction's held stream (see splice_sock_stats). */
#define SPLICE_REPEAT_SLOTS 4
struct splice_repeat {
  __u64 at;     /* held-stream offset of the first of them (held_bytes before the skb) */
  __u32 len;    /* repeated bytes */
  /* Which repeat this is, from 1. The verdict writes it first and readers copy it last
   * (a value is copied in address order), so a slot rewritten during the copy shows a
   * number other than the one expected. */
  __u32 number;
};
SPLICE_ABI_ASSERT(sizeof(struct splice_repeat) == 16, "splice_repeat layout");

/* Counters for one socket's receive side, i.e. for one direction of a pair. */
struct splice_sock_stats {
  /* Bytes the verdict handed to the peer's egress (bpf_sk_redirect_hash succeeded). They
   * are on their way to the peer's TCP send queue, not necessarily in it yet. */
  __u64 redirected_bytes;
  __u64 redirected_skbs;
  /* Bytes left on this socket for userspace to read (SK_PASS) because the peer entry was
   * missing. Once non-zero, every later byte is passed too, so the bytes userspace reads
   * are never overtaken by redirected ones: this direction then belongs to the relay. */
  __u64 passed_bytes;
  /* Non-zero once a bare FIN arrived (a zero-length skb, dropped: redirecting it would
   * set EPIPE on the peer). A FIN riding on data does not show here: userspace watches
   * POLLRDHUP and propagates the FIN itself after draining. */
  __u32 fin_seen;
  /* TCP sequence number just past the last data byte the verdict saw (0: none yet). */
  __u32 next_seq;
  /* Bytes left on this socket (SK_PASS) because userspace holds this direction back: its
   * control entry says hold, or earlier held bytes are not all relayed yet. They are charged
   * to this socket's receive buffer, so ordinary TCP flow control throttles the sender, and
   * a userspace read reopens the window at once. Userspace relays them to the peer after
   * every redirected byte is in the peer's send queue; the verdict redirects again only once
   * every held byte is in it too (relayed_bytes == held_bytes), so nothing is reordered. */
  __u64 held_bytes;
  /* All repeated heads so far (see `repeat`): held_bytes counts them, TCP received them once. */
  __u64 repeated_bytes;
  /* Repeats recorded so far; the latest SPLICE_REPEAT_SLOTS are in `repeat`. */
  __u32 repeats;
  /* Repeats that came while the direction was passed (userspace reads those bytes as they come,
   * so they cannot be cut out): the pair can no longer keep the stream exact and is aborted. */
  __u32 unplaced_repeats;
  /* The kernel can hand a held skb to the verdict a second time with later segments coalesced
   * behind it, its first copy already readable on the socket (docs/splice.md, "An skb held
   * twice"). The verdict holds such an skb too and records where its repeated head sits in the
   * held stream; relay_held drops those bytes. Repeat n (from 1) is in slot (n - 1) %
   * SPLICE_REPEAT_SLOTS, written before `repeats` counts it and before held_bytes grows past
   * it; a reader that finds another number in the slot knows it was overwritten unread. */
  struct splice_repeat repeat[SPLICE_REPEAT_SLOTS];
};
SPLICE_ABI_ASSERT(sizeof(struct splice_sock_stats) == 120, "splice_stats value layout");

/* Userspace's instructions for one socket's receive side. Userspace rewrites an entry in place
 * (BPF_F_LOCK) and the verdict reads it under the same lock: a replaced element of a hash map
 * may be reused for another key at once (bpf_mem_alloc), so in-place updates under the lock are
 * what gives the verdict one consistent value of its own socket. */
struct splice_control {
  /* Held bytes (see held_bytes) userspace has written, whole, into the peer's send queue. */
  __u64 relayed_bytes;
  /* Non-zero: hold what arrives from now on instead of redirecting it. */
  __u32 hold;
  struct bpf_spin_lock lock;
};
SPLICE_ABI_ASSERT(sizeof(struct splice_control) == 16, "splice_control value layout");

/* Sockhash values are written as a __u64 fd and read back by userspace as the cookie. */
SPLICE_ABI_ASSERT(sizeof(__u64) == 8, "splice_peers key and value size");
