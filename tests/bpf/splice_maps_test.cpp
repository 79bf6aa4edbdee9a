// The engine's maps and the kernel probe: sizes, a full map, a socket spliced twice, the drain
// rule.
#include "splice_fixture.h"

using namespace splice_test;

TEST_CASE("load() refuses a map too small for one pair") {
  auto engine = SpliceEngine::load(1);
  REQUIRE_FALSE(engine.has_value());
  CHECK(engine.error().message().find("max_sockets") != std::string::npos);
}

TEST_CASE("a full map is reported as map_full and the failed pair leaves nothing") {
  auto small = SpliceEngine::load(2);
  REQUIRE(small.has_value());
  {
    Topology first;
    Topology second;
    SplicedPair pair = splice_or_fail(*small, first);
    auto refused = small->splice(second.p1(), second.p2());
    REQUIRE_FALSE(refused.has_value());
    CHECK(refused.error().failure == SpliceFailure::map_full);
    CHECK(small->occupancy()->peer_entries == 2);
    CHECK(small->occupancy()->stats_entries == 2);
    // The first pair is untouched.
    send_all(first.client.get(), "still spliced");
    CHECK(read_exactly(first.backend.get(), 13, 1000ms) == "still spliced");
  }
  require_maps_empty(*small);
}

TEST_CASE("a socket spliced twice is refused without disturbing its pair") {
  SpliceEngine engine = load_engine();
  {
    Topology t;
    Topology other;
    SplicedPair pair = splice_or_fail(engine, t);
    auto again = engine.splice(t.p1(), other.p2());
    REQUIRE_FALSE(again.has_value());
    CHECK(again.error().failure == SpliceFailure::system);
    CHECK(again.error().error_number == EEXIST);
    send_all(t.client.get(), "intact");
    CHECK(read_exactly(t.backend.get(), 6, 1000ms) == "intact");
  }
  require_maps_empty(engine);
}

TEST_CASE("the kernel feature probe finds the splice and XDP, and degrades without privileges") {
  using snisplice::bpf::Support;
  const auto features = snisplice::bpf::probe_kernel_features();
  CHECK(features.sockmap.support == Support::available);
  CHECK(features.xdp.support == Support::available);
  CHECK(snisplice::bpf::describe(features).find("sockmap splice: available") != std::string::npos);

  // Unprivileged, in a child: every probe must answer, none may crash.
  int result_pipe[2];
  REQUIRE(::pipe(result_pipe) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::close(result_pipe[0]);
    if (::setresgid(65534, 65534, 65534) != 0 || ::setresuid(65534, 65534, 65534) != 0) ::_exit(2);
    const auto unprivileged = snisplice::bpf::probe_kernel_features();
    const std::string text = snisplice::bpf::describe(unprivileged) +
                             (unprivileged.sockmap.support == Support::available ? "AVAILABLE" : "");
    ::write(result_pipe[1], text.data(), text.size());
    ::_exit(0);
  }
  ::close(result_pipe[1]);
  std::string text;
  char chunk[512];
  for (ssize_t n; (n = ::read(result_pipe[0], chunk, sizeof chunk)) > 0;) text.append(chunk, static_cast<size_t>(n));
  ::close(result_pipe[0]);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  INFO(text);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(text.find("sockmap splice: unknown") != std::string::npos);
  CHECK(text.find("AVAILABLE") == std::string::npos);
}

TEST_CASE("the drain rule compares redirected with delivered bytes") {
  using snisplice::bpf::drained;
  using snisplice::bpf::undelivered_bytes;
  CHECK(drained(0, 0));
  CHECK_FALSE(drained(10, 9));
  CHECK(drained(10, 10));
  CHECK(undelivered_bytes(10, 4) == 6);
  CHECK(undelivered_bytes(4, 10) == 0);
}

TEST_CASE("unseen bytes: received by the source but counted by no verdict") {
  using snisplice::bpf::DirectionStats;
  using snisplice::bpf::unseen_bytes;
  DirectionStats counters;
  counters.redirected_bytes = 1000;
  counters.passed_bytes = 10;
  counters.held_bytes = 300;
  CHECK(unseen_bytes(1310, counters) == 0);
  CHECK(unseen_bytes(2158, counters) == 848);
  // A repeated head is in held_bytes twice but arrived once.
  counters.held_bytes = 400;
  counters.repeated_bytes = 100;
  CHECK(unseen_bytes(1310, counters) == 0);
  CHECK(unseen_bytes(1311, counters) == 1);
  // Counted before TCP_INFO was read: never negative.
  CHECK(unseen_bytes(1000, counters) == 0);
}
