"""What the benchmarks read about processes from /proc, in one place: the CPU accounting (cpu.py)
and the idle-memory measurements (idle.py) both walk /proc/PID/stat."""
import collections
import os

# start_ticks: when the process started (clock ticks after boot); with pid it names one process,
# since a pid can be reused. cpu_ticks: utime + stime, every thread's (dead ones' too).
Process = collections.namedtuple("Process", "pid ppid session start_ticks cpu_ticks")

KTHREADD = 2   # the parent of every kernel thread


def parse_stat(pid, text):
    """One /proc/PID/stat line. The command name may hold spaces and parentheses, so the fields
    are counted from its last ')': state is then field 0, ppid 1, session 3, utime 11, stime 12,
    starttime 19 (proc(5)'s fields 3, 4, 6, 14, 15 and 22)."""
    fields = text[text.rindex(")") + 2:].split()
    return Process(pid, int(fields[1]), int(fields[3]), int(fields[19]), int(fields[11]) + int(fields[12]))


def stat_texts(proc="/proc"):
    """pid -> the text of its /proc/PID/stat, for every process that still exists once read."""
    texts = {}
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        try:
            with open(f"{proc}/{entry}/stat") as f:
                texts[int(entry)] = f.read()
        except OSError:
            continue   # ended since the listing
    return texts


def processes(proc="/proc"):
    return [parse_stat(pid, text) for pid, text in stat_texts(proc).items()]


def is_kernel_thread(process):
    return process.ppid == KTHREADD or process.pid == KTHREADD


def session_pids(leader):
    """The processes of the session `leader` started (every proxy runs in its own)."""
    return [p.pid for p in processes() if p.session == leader]


def rss_kib(pids):
    """VmRSS summed over processes, in KiB."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            continue   # a process that ended (or a kernel thread) holds nothing
    return total
