"""Modules behind bench/run-peers, bench/compare, bench/chart, bench/measure-noise and
bench/idle-memory: where the processes run (topology), how each peer is configured (peers), what
is measured (workloads, cpu), how a run is stored (results) and read back (compare, charts)."""
