"""Memory of processes, from /proc (Linux): RSS, PSS, process trees."""

import os
import threading
import time
from pathlib import Path


def children(pid):
    """Every descendant pid of ``pid``."""
    found, queue = [], [pid]
    while queue:
        parent = queue.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except OSError:
                continue
            found.extend(kids)
            queue.extend(kids)
    return found


def tree(pid):
    return [pid] + children(pid)


def _field(path, name, unit=1024):  # a /proc status file's counts are in kB, but for a few (unit 1)
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1]) * unit
    except OSError:
        pass
    return 0


def rss(pid):
    return _field(f"/proc/{pid}/status", "VmRSS")


def rss_anon(pid):
    """Resident memory that is the process's own (heap, arrays); RSS less mapped files' cached pages."""
    return _field(f"/proc/{pid}/status", "RssAnon")


def pss(pid):
    """Proportional set size: shared pages (the memory-mapped store) split between their users."""
    return _field(f"/proc/{pid}/smaps_rollup", "Pss")


def rollup(pid):
    """The smaps_rollup fields (bytes) of one process."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
            name, value, *_ = line.split()
            out[name.rstrip(":")] = int(value) * 1024
    except OSError:
        pass
    return out


class PeakSampler:
    """Samples the summed RSS of a process tree in a thread; ``peak`` is the largest seen.

    ``peak_anon`` leaves out pages of memory-mapped files (the builder reads
    its scratch files and writes vectors.npy through maps): those are page
    cache the kernel drops under pressure, not memory the build needs.
    """

    def __init__(self, pid, every=0.1):
        self.pid, self.every = pid, every
        self.peak = self.peak_main = self.peak_anon = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            pids = tree(self.pid)
            self.peak = max(self.peak, sum(rss(p) for p in pids))
            self.peak_anon = max(self.peak_anon, sum(rss_anon(p) for p in pids))
            self.peak_main = max(self.peak_main, rss(self.pid))
            self._stop.wait(self.every)

    def stop(self):
        self._stop.set()
        self._thread.join()
        return self.peak


def cpu_ticks(stat_path):
    """User + system CPU clock ticks so far, from a process's or a thread's /proc stat file (0 when gone)."""
    try:
        fields = Path(stat_path).read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])  # utime, stime


def context_switches(status_path):
    """(voluntary, involuntary) context switches so far, from a process's or a thread's /proc status file."""
    return (_field(status_path, "voluntary_ctxt_switches", unit=1),
            _field(status_path, "nonvoluntary_ctxt_switches", unit=1))


def cpu_seconds(pids):
    """User + system CPU seconds used so far by ``pids`` (from /proc/PID/stat)."""
    return sum(cpu_ticks(f"/proc/{pid}/stat") for pid in pids) / os.sysconf("SC_CLK_TCK")


def mib(n):
    return round(n / 2**20, 1)


if __name__ == "__main__":
    print(mib(rss(os.getpid())), mib(pss(os.getpid())), time.time())
