"""CPU time, system-wide and attributed to one benchmark run."""
import os
import resource

from . import procfs

CLK_TCK = os.sysconf("SC_CLK_TCK")


def busy_seconds():
    """Busy time of every CPU since boot, from /proc/stat (all but idle and iowait)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal guest guest_nice; guest is inside user.
    idle = fields[3] + fields[4]
    total = sum(fields[:8])
    return (total - idle) / CLK_TCK


def attributed_sample(sessions):
    """One moment of the attributed accounting: this run's own processes and every kernel thread,
    and the load client, reaped before (RUSAGE_CHILDREN).

    On a shared machine the system-wide figure also carries everyone else's work. `sessions` are
    those of the processes this run started (each in its own session, so nginx workers and all
    threads count); kernel threads (kworkers running the sockmap backlog, ksoftirqd) are added.
    Without CONFIG_IRQ_TIME_ACCOUNTING softirq work is charged by the tick to whichever task it
    interrupted: on loopback and behind veths without RPS mostly the sender, one of ours; with RPS
    the steered softirq runs on another CPU, where it may interrupt anyone (the system-wide figure
    catches it)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return sample_of(procfs.stat_texts(), sessions, children.ru_utime + children.ru_stime)


def sample_of(stat_texts, sessions, children_seconds, ticks_per_second=CLK_TCK):
    """The sample made of pid -> /proc/PID/stat texts: CPU ticks of every counted process, keyed
    by (pid, start time), so that a pid reused in between is another process."""
    counted = (procfs.parse_stat(pid, text) for pid, text in stat_texts.items())
    ticks = {(p.pid, p.start_ticks): p.cpu_ticks for p in counted
             if p.session in sessions or procfs.is_kernel_thread(p)}
    return {"ticks": ticks, "children_seconds": children_seconds, "ticks_per_second": ticks_per_second}


def attributed_between(before, after):
    """CPU seconds spent between two samples. Each process counts what it added between them: one
    that is not in `before` (started in between, or its pid reused) counts all its time, one that
    is not in `after` (ended in between) counts nothing.

    Subtracting the two samples' totals instead loses an ended process's whole past: a kworker
    the workqueue reaps after it idled for minutes takes seconds of earlier sockmap backlog work
    with it, and the measurement it ends in comes out negative (-5.9 s for one paced run in
    bench/results/2026-12-06T2325Z.json). Such a worker did nothing in between; what a process
    of this run did before it ended in between is lost, but none ends while one is measured."""
    ticks = sum(count - before["ticks"].get(key, 0) for key, count in after["ticks"].items())
    return ticks / after["ticks_per_second"] + after["children_seconds"] - before["children_seconds"]
