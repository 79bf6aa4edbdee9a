"""CPU time, system-wide and attributed to one benchmark run."""
import os
import resource

CLK_TCK = os.sysconf("SC_CLK_TCK")


def busy_seconds():
    """Busy time of every CPU since boot, from /proc/stat (all but idle and iowait)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal guest guest_nice; guest is inside user.
    idle = fields[3] + fields[4]
    total = sum(fields[:8])
    return (total - idle) / CLK_TCK


def attributed_seconds(sessions):
    """CPU time of this run's own processes plus every kernel thread.

    On a shared machine the system-wide figure also carries everyone else's work. `sessions` are
    those of the processes this run started (each in its own session, so nginx workers and all
    threads count); the load client is counted through RUSAGE_CHILDREN; kernel threads (kworkers
    running the sockmap backlog, ksoftirqd) are added. Without CONFIG_IRQ_TIME_ACCOUNTING softirq
    work is charged by the tick to whichever task it interrupted: on loopback and behind veths
    without RPS mostly the sender, one of ours; with RPS the steered softirq runs on another CPU,
    where it may interrupt anyone (the system-wide figure catches it)."""
    total_ticks = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                text = f.read()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()
        ppid, session = int(fields[1]), int(fields[3])
        if session in sessions or ppid == 2 or entry == "2":
            total_ticks += int(fields[11]) + int(fields[12])
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return total_ticks / CLK_TCK + children.ru_utime + children.ru_stime
