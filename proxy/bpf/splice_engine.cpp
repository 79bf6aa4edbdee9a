#include "bpf/splice_engine.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <optional>
#include <span>
#include <string_view>
#include <utility>

#include "bpf/splice_rollback.h"
#include "splice.skel.h"
#include "splice_abi.h"

static_assert(snisplice::bpf::kRepeatSlots == SPLICE_REPEAT_SLOTS);
static_assert(sizeof(snisplice::bpf::RepeatRecord) == sizeof(splice_repeat));

namespace snisplice::bpf {
namespace {

// Errno -> the caller's decision. All of them mean "relay in userspace"; the kind is for
// the metric and the log.
SpliceFailure classify_insert_errno(int error_number) {
  switch (error_number) {
    case EOPNOTSUPP: return SpliceFailure::not_established;
    case E2BIG:
    case ENOSPC:
    case ENOMEM: return SpliceFailure::map_full;
    default: return SpliceFailure::system;
  }
}

SpliceError insert_error(std::string_view what, int error_number) {
  return SpliceError{classify_insert_errno(error_number), error_number, Error::from_errno(std::string(what), error_number).message()};
}

SpliceError system_error(std::string_view what, int error_number) {
  return SpliceError{SpliceFailure::system, error_number, Error::from_errno(std::string(what), error_number).message()};
}

// Walks the keys; under concurrent deletes the walk may restart, hence the bound.
tl::expected<size_t, Error> count_entries(int map_fd, size_t max_entries) {
  size_t count = 0;
  uint64_t key = 0;
  const void* previous = nullptr;  // first call: no previous key
  while (count <= max_entries) {
    uint64_t next = 0;
    if (::bpf_map_get_next_key(map_fd, previous, &next) != 0) {
      if (errno == ENOENT) return count;
      return tl::unexpected(Error::from_errno("bpf_map_get_next_key", errno));
    }
    ++count;
    key = next;
    previous = &key;
  }
  return count;
}

}  // namespace

std::string_view to_string(SpliceFailure failure) {
  switch (failure) {
    case SpliceFailure::not_established: return "not_established";
    case SpliceFailure::partly_read: return "partly_read";
    case SpliceFailure::map_full: return "map_full";
    case SpliceFailure::lost: return "lost";
    case SpliceFailure::system: return "system";
  }
  return "system";
}

// ---------------------------------------------------------------------------- SpliceEngine

tl::expected<SpliceEngine, Error> SpliceEngine::load(uint32_t max_sockets) {
  if (max_sockets < 2) return tl::unexpected(Error{"splice: max_sockets must be at least 2"});
  struct splice* skeleton = splice__open();
  if (skeleton == nullptr) return tl::unexpected(Error::from_errno("splice: open BPF object", errno));
  SpliceEngine engine(skeleton);  // destroys the skeleton on every early return

  for (bpf_map* map : {skeleton->maps.splice_peers, skeleton->maps.splice_stats, skeleton->maps.splice_control}) {
    if (int err = bpf_map__set_max_entries(map, max_sockets); err != 0) {
      return tl::unexpected(Error::from_errno(std::string("splice: size ") + bpf_map__name(map), -err));
    }
  }
  if (int err = splice__load(skeleton); err != 0) {
    const bool denied = err == -EPERM;
    return tl::unexpected(Error::from_errno(denied ? "splice: load BPF program (needs CAP_BPF and CAP_NET_ADMIN)"
                                                   : "splice: load BPF program",
                                            -err));
  }
  // libbpf 1.1 has no auto-attach for stream verdicts: attach to the map explicitly.
  if (::bpf_prog_attach(bpf_program__fd(skeleton->progs.splice_verdict),
                        bpf_map__fd(skeleton->maps.splice_peers), BPF_SK_SKB_STREAM_VERDICT, 0) != 0) {
    return tl::unexpected(Error::from_errno("splice: attach stream verdict", errno));
  }
  return engine;
}

SpliceEngine::SpliceEngine(SpliceEngine&& other) noexcept
    : skeleton_(std::exchange(other.skeleton_, nullptr)) {}

SpliceEngine& SpliceEngine::operator=(SpliceEngine&& other) noexcept {
  if (this != &other) {
    destroy();
    skeleton_ = std::exchange(other.skeleton_, nullptr);
  }
  return *this;
}

SpliceEngine::~SpliceEngine() { destroy(); }

void SpliceEngine::destroy() noexcept {
  if (skeleton_ == nullptr) return;
  // Fails harmlessly when load() stopped before attaching.
  ::bpf_prog_detach2(bpf_program__fd(skeleton_->progs.splice_verdict),
                     bpf_map__fd(skeleton_->maps.splice_peers), BPF_SK_SKB_STREAM_VERDICT);
  splice__destroy(std::exchange(skeleton_, nullptr));
}

int SpliceEngine::peers_map_fd() const { return bpf_map__fd(skeleton_->maps.splice_peers); }
int SpliceEngine::stats_map_fd() const { return bpf_map__fd(skeleton_->maps.splice_stats); }
int SpliceEngine::control_map_fd() const { return bpf_map__fd(skeleton_->maps.splice_control); }

tl::expected<MapOccupancy, Error> SpliceEngine::occupancy() const {
  const size_t max_entries = bpf_map__max_entries(skeleton_->maps.splice_peers);
  auto peers = count_entries(peers_map_fd(), max_entries);
  if (!peers) return tl::unexpected(peers.error().within("splice_peers"));
  auto stats = count_entries(stats_map_fd(), max_entries);
  if (!stats) return tl::unexpected(stats.error().within("splice_stats"));
  auto control = count_entries(control_map_fd(), max_entries);
  if (!control) return tl::unexpected(control.error().within("splice_control"));
  return MapOccupancy{*peers, *stats, *control};
}

tl::expected<SplicedPair, SpliceError> SpliceEngine::splice(int client_fd, int backend_fd, ReadsBefore reads) const {
  SplicedPair::Side client{.fd = client_fd};
  SplicedPair::Side backend{.fd = backend_fd};
  for (SplicedPair::Side* side : {&client, &backend}) {
    auto cookie = socket_cookie(side->fd);
    if (!cookie) return tl::unexpected(system_error("getsockopt(SO_COOKIE)", cookie.error()));
    side->cookie = *cookie;
    // Baselines: what userspace wrote (a PROXY header) and read (a consumed one) before now.
    auto before = baselines(side->fd);
    if (!before) return tl::unexpected(SpliceError{SpliceFailure::system, before.error().errno_value, before.error().message()});
    // Queued bytes behind a read may share a segment with read ones; the verdict would send
    // that segment whole. With nothing read, or nothing queued, or a last read that came back
    // short anywhere but at an urgent mark, no segment is split. (SIOCINQ counts only up to
    // an urgent mark: a read stopped there sees nothing queued.)
    if (before->read > 0 &&
        ((before->unread > 0 && reads == ReadsBefore::eagain) || at_urgent_mark(side->fd))) {
      return tl::unexpected(SpliceError{SpliceFailure::partly_read, 0,
                                        before->unread > 0 ? std::to_string(before->unread) +
                                                                 " bytes wait behind bytes already read: read until EAGAIN first"
                                                           : std::string("the last read stopped at an urgent mark")});
    }
    // Checked before any insert, not left to the sockhash's refusal: bytes the first socket
    // receives while the second insert fails are held or passed into its psock, and the
    // rollback drops them with it (measured: 100 KB of a hand-over lost to a client's FIN).
    // A FIN landing between this reading and the inserts still can.
    if (!before->established)
      return tl::unexpected(SpliceError{SpliceFailure::not_established, 0, "a socket is not ESTABLISHED"});
    side->queue_baseline = before->into_send_queue;
    side->received_baseline = before->read;
  }

  // Every insert uses BPF_NOEXIST, so a socket already spliced elsewhere is refused (EEXIST)
  // and the rollback deletes only the entries this call created.
  std::array<MapEntry, 6> inserted{};
  size_t inserted_count = 0;
  auto insert = [&](int map_fd, uint64_t key, const void* value) {
    if (::bpf_map_update_elem(map_fd, &key, value, BPF_NOEXIST) != 0) return false;
    inserted[inserted_count++] = MapEntry{map_fd, key};
    return true;
  };
  const int peers = peers_map_fd();
  const int stats = stats_map_fd();
  auto fail = [&](SpliceError error) {
    // What an inserted socket's verdict took goes with its psock unless read back first
    // (measured: megabytes of a stream lost to a refused insert).
    RolledBack rolled = roll_back(std::span(inserted).first(inserted_count), peers, stats,
                                  {client.fd, client.cookie, client.received_baseline},
                                  {backend.fd, backend.cookie, backend.received_baseline});
    if (!rolled.lost.empty()) {
      error.failure = SpliceFailure::lost;
      error.message += "; bytes the verdict took could not all be read back: " + rolled.lost;
    }
    error.from_client = std::move(rolled.from_client);
    error.from_backend = std::move(rolled.from_backend);
    return tl::unexpected(std::move(error));
  };
  // Stats first, so the verdict counts from the first byte it sees. No control entry for a
  // splice from the first byte: the verdict redirects without one, and most pairs never pause
  // (pause() makes it).
  const splice_sock_stats zero{};
  for (const SplicedPair::Side* side : {&client, &backend}) {
    if (!insert(stats, side->cookie, &zero)) return fail(insert_error("splice_stats insert", errno));
  }
  if (reads == ReadsBefore::ended_short) {
    // A hand-over starts paused: its sources may have filled their windows while the caller
    // read and replayed, and bytes the verdict redirects from a full queue were measured to
    // leave the window closed until the sender's zero-window probe (100-750 ms). Held bytes
    // are read by relay_held(), and a read reopens the window at once; the verdict redirects
    // again after resume().
    const splice_control hold{.relayed_bytes = 0, .hold = 1, .lock = {}};
    for (SplicedPair::Side* side : {&client, &backend}) {
      if (!insert(control_map_fd(), side->cookie, &hold)) return fail(insert_error("splice_control insert", errno));
      side->paused = true;
      side->has_control = true;
    }
  }
  // Each socket under its peer's cookie; the insert also attaches the verdict to it. The
  // backend first: until the client is in, what the backend receives is passed, not
  // redirected, and it has been sent nothing yet to answer (the client's queued bytes move
  // only at the kick below). The client's bytes find their peer from its first verdict on.
  const uint64_t client_value = static_cast<uint64_t>(client_fd);
  const uint64_t backend_value = static_cast<uint64_t>(backend_fd);
  if (!insert(peers, client.cookie, &backend_value)) return fail(insert_error("splice_peers insert backend", errno));
  if (!insert(peers, backend.cookie, &client_value)) return fail(insert_error("splice_peers insert client", errno));
  for (const SplicedPair::Side* side : {&client, &backend}) {
    if (!kick(side->fd)) return fail(system_error("setsockopt(SO_RCVLOWAT)", errno));
  }
  return SplicedPair(peers, stats, control_map_fd(), client, backend);
}

// ----------------------------------------------------------------------------- SplicedPair

SplicedPair::SplicedPair(SplicedPair&& other) noexcept
    : peers_map_fd_(other.peers_map_fd_),
      stats_map_fd_(other.stats_map_fd_),
      control_map_fd_(other.control_map_fd_),
      client_(other.client_),
      backend_(other.backend_),
      held_relays_(std::move(other.held_relays_)),
      in_maps_(std::exchange(other.in_maps_, false)) {}

SplicedPair& SplicedPair::operator=(SplicedPair&& other) noexcept {
  if (this != &other) {
    release();
    peers_map_fd_ = other.peers_map_fd_;
    stats_map_fd_ = other.stats_map_fd_;
    control_map_fd_ = other.control_map_fd_;
    client_ = other.client_;
    backend_ = other.backend_;
    held_relays_ = std::move(other.held_relays_);
    in_maps_ = std::exchange(other.in_maps_, false);
  }
  return *this;
}

SplicedPair::~SplicedPair() { release(); }

void SplicedPair::release() noexcept { (void)remove(); }

namespace {

DirectionStats to_direction_stats(const splice_sock_stats& value) {
  DirectionStats out;
  out.redirected_bytes = value.redirected_bytes;
  out.redirected_skbs = value.redirected_skbs;
  out.passed_bytes = value.passed_bytes;
  out.held_bytes = value.held_bytes;
  out.fin_seen = value.fin_seen != 0;
  out.repeats = value.repeats;
  for (size_t slot = 0; slot < kRepeatSlots; ++slot) {
    out.repeat_slots[slot] = {.at = value.repeat[slot].at, .len = value.repeat[slot].len,
                              .number = value.repeat[slot].number};
  }
  out.repeated_bytes = value.repeated_bytes;
  out.unplaced_repeats = value.unplaced_repeats;
  return out;
}

}  // namespace

// The sockhash entries go first (they carry the verdict and the redirect targets) so that
// nothing is redirected into a socket on its way out; the stats entries are then read and
// deleted in one call each; control entries only where pause() made one.
PairStats SplicedPair::remove() noexcept {
  PairStats result;
  if (!std::exchange(in_maps_, false)) return result;
  ::bpf_map_delete_elem(peers_map_fd_, &backend_.cookie);
  ::bpf_map_delete_elem(peers_map_fd_, &client_.cookie);
  auto take = [this](uint64_t cookie, DirectionStats& out) {
    splice_sock_stats value{};
    // Hash maps have had lookup-and-delete since 5.14; the verdict itself needs 6.2.
    if (::bpf_map_lookup_and_delete_elem(stats_map_fd_, &cookie, &value) == 0) out = to_direction_stats(value);
  };
  take(client_.cookie, result.client_to_backend);
  take(backend_.cookie, result.backend_to_client);
  for (Side* side : {&client_, &backend_}) {
    if (std::exchange(side->has_control, false)) ::bpf_map_delete_elem(control_map_fd_, &side->cookie);
  }
  return result;
}

SplicedPair::Side& SplicedPair::source(Direction direction) {
  return direction == Direction::client_to_backend ? client_ : backend_;
}
const SplicedPair::Side& SplicedPair::source(Direction direction) const {
  return direction == Direction::client_to_backend ? client_ : backend_;
}
const SplicedPair::Side& SplicedPair::destination(Direction direction) const {
  return direction == Direction::client_to_backend ? backend_ : client_;
}
SplicedPair::Side& SplicedPair::destination(Direction direction) {
  return direction == Direction::client_to_backend ? backend_ : client_;
}

PairStats SplicedPair::stats() const {
  PairStats result;
  if (!in_maps_) return result;
  auto read = [this](uint64_t cookie, DirectionStats& out) {
    splice_sock_stats value{};
    if (::bpf_map_lookup_elem(stats_map_fd_, &cookie, &value) == 0) out = to_direction_stats(value);
  };
  read(client_.cookie, result.client_to_backend);
  read(backend_.cookie, result.backend_to_client);
  return result;
}

tl::expected<PairState, Error> SplicedPair::read() const {
  PairState state;
  // Counters first: bytes counted after this read are compared with later deliveries.
  state.stats = stats();
  auto client = socket_state(client_.fd);
  if (!client) return tl::unexpected(client.error());
  auto backend = socket_state(backend_.fd);
  if (!backend) return tl::unexpected(backend.error());
  state.client = *client;
  state.backend = *backend;
  return state;
}

tl::expected<PairState, Error> SplicedPair::read_destination(Direction direction) const {
  PairState state;
  state.stats = stats();  // counters first, as in read()
  auto to = socket_state(destination(direction).fd);
  if (!to) return tl::unexpected(to.error());
  (direction == Direction::client_to_backend ? state.backend : state.client) = *to;
  return state;
}

const SocketState& SplicedPair::source_state(Direction direction, const PairState& state) const {
  return direction == Direction::client_to_backend ? state.client : state.backend;
}
const SocketState& SplicedPair::destination_state(Direction direction, const PairState& state) const {
  return direction == Direction::client_to_backend ? state.backend : state.client;
}

uint64_t SplicedPair::delivered(Direction direction, const PairState& state) const {
  const uint64_t queued = destination_state(direction, state).into_send_queue;
  const uint64_t baseline = destination(direction).queue_baseline;
  return queued > baseline ? queued - baseline : 0;
}

tl::expected<uint64_t, Error> SplicedPair::delivered(Direction direction) const {
  auto state = read_destination(direction);
  if (!state) return tl::unexpected(state.error());
  return delivered(direction, *state);
}

bool SplicedPair::fin_received(Direction direction, const PairState& state) const {
  return source_state(direction, state).fin_received;
}

uint64_t SplicedPair::unseen(Direction direction, const PairState& state) const {
  const uint64_t received_total = source_state(direction, state).received;
  const uint64_t received_since_splice =
      received_total - std::min(received_total, source(direction).received_baseline);
  return unseen_bytes(received_since_splice, state.stats[direction]);
}

bool SplicedPair::kick_source(Direction direction) const { return kick(source(direction).fd); }

bool SplicedPair::drained(Direction direction, const PairState& state) const {
  if (unseen(direction, state) > 0) return false;
  const HeldRelay* held = held_relay(direction);
  if (state.stats[direction].held_bytes != taken(direction) || (held != nullptr && !held->in_hand.empty())) return false;
  return progress(direction, state).undelivered == 0;
}

tl::expected<bool, Error> SplicedPair::drained(Direction direction) const {
  auto state = read();
  if (!state) return tl::unexpected(state.error());
  return drained(direction, *state);
}

tl::expected<bool, Error> SplicedPair::shutdown_peer_when_drained(Direction direction,
                                                                        const PairState& state) {
  Side& to = destination(direction);
  if (to.shut_down) return true;
  if (!drained(direction, state)) return false;
  if (::shutdown(to.fd, SHUT_WR) != 0) return tl::unexpected(Error::from_errno("shutdown(SHUT_WR)", errno));
  to.shut_down = true;
  return true;
}

tl::expected<bool, Error> SplicedPair::shutdown_peer_when_drained(Direction direction) {
  if (destination(direction).shut_down) return true;
  auto state = read();
  if (!state) return tl::unexpected(state.error());
  return shutdown_peer_when_drained(direction, *state);
}

tl::expected<uint64_t, Error> SplicedPair::undelivered(Direction direction) const {
  if (destination(direction).shut_down) return 0;  // see progress(): nothing to ask
  auto state = read_destination(direction);
  if (!state) return tl::unexpected(state.error());
  return progress(direction, *state).undelivered;
}

SplicedPair::Progress SplicedPair::progress(Direction direction, const PairState& state) const {
  const uint64_t sent = delivered(direction, state);
  // A half-closed destination counts its own FIN in its queue; it no longer receives.
  if (destination(direction).shut_down) return Progress{sent, 0};
  const uint64_t relayed_bytes = relayed(direction);
  const uint64_t by_verdict = sent > relayed_bytes ? sent - relayed_bytes : 0;
  return Progress{sent, undelivered_bytes(state.stats[direction].redirected_bytes, by_verdict)};
}

tl::expected<bool, Error> SplicedPair::over_budget(uint64_t budget_bytes) const {
  auto state = read();
  if (!state) return tl::unexpected(state.error());
  for (Direction direction : {Direction::client_to_backend, Direction::backend_to_client}) {
    if (progress(direction, *state).undelivered > budget_bytes) return true;
  }
  return false;
}

tl::expected<void, Error> SplicedPair::publish_control(Direction direction) {
  Side& from = source(direction);
  const splice_control value{.relayed_bytes = taken(direction), .hold = from.paused ? 1u : 0u, .lock = {}};
  // Rewrites the value in place under its lock (splice_abi.h): the verdict reads no entry
  // (redirect), the old value or this one, never another socket's.
  if (::bpf_map_update_elem(control_map_fd_, &from.cookie, &value, BPF_F_LOCK) != 0) {
    return tl::unexpected(Error::from_errno("splice_control update", errno));
  }
  from.has_control = true;
  return {};
}

tl::expected<void, Error> SplicedPair::pause(Direction direction) {
  if (!in_maps_) return tl::unexpected(Error{"pause: the pair is no longer spliced"});
  // Two other ways were measured and rejected (docs/splice.md): shrinking the source's
  // receive buffer closes its window completely, and the sender then waits for its next
  // zero-window probe (200 ms or more) after the buffer is restored; taking the socket out of
  // the verdict's map drops the segment a verdict on another CPU holds.
  Side& from = source(direction);
  if (from.paused) return {};
  from.paused = true;
  if (auto published = publish_control(direction); !published) {
    from.paused = false;
    return published;
  }
  return {};
}

tl::expected<void, Error> SplicedPair::resume(Direction direction) {
  if (!in_maps_) return tl::unexpected(Error{"resume: the pair is no longer spliced"});
  Side& from = source(direction);
  if (!from.paused) return {};
  from.paused = false;
  if (auto published = publish_control(direction); !published) {
    from.paused = true;
    return published;
  }
  return {};
}

bool SplicedPair::paused(Direction direction) const { return source(direction).paused; }

bool SplicedPair::holding(Direction direction, const PairStats& counters) const {
  const HeldRelay* held = held_relay(direction);
  return source(direction).paused || (held != nullptr && !held->in_hand.empty()) ||
         counters[direction].held_bytes != taken(direction);
}

bool SplicedPair::holding(Direction direction) const { return holding(direction, stats()); }

void SplicedPair::abort() {
  release();
  const linger reset{.l_onoff = 1, .l_linger = 0};
  for (const Side* side : {&client_, &backend_}) {
    ::setsockopt(side->fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
  }
}

}  // namespace snisplice::bpf
