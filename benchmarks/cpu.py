"""CPU and memory of the processes under test, sampled with psutil.

- the server's process tree (gunicorn master + workers, or node): CPU seconds, peak cores
  used over a sliding second, resident memory per process;
- this driver process;
- PostgreSQL backends serving our ``bench`` database (their command line names it) and the
  Redis server (shared with anyone else using it on this machine: flagged as such).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psutil


def _cpu(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return 0.0
    return float(times.user + times.system)


def _machine_busy() -> float:
    """CPU seconds the whole machine has spent busy (all cores, not idle or waiting on I/O)."""
    times = psutil.cpu_times()
    idle = times.idle + getattr(times, "iowait", 0.0)
    return float(sum(times) - idle)


@dataclass
class ProcessGroup:
    """CPU seconds of a changing set of processes, remembered per pid so a process that
    appears mid-run counts from zero and one that exits keeps its last reading."""

    name: str
    last: dict[int, float] = field(default_factory=dict)
    base: dict[int, float] = field(default_factory=dict)

    def processes(self) -> list[psutil.Process]:
        raise NotImplementedError

    def read(self) -> float:
        """Total CPU seconds since :meth:`start`."""
        for process in self.processes():
            self.last[process.pid] = _cpu(process)
        return sum(v - self.base.get(pid, 0.0) for pid, v in self.last.items())

    def start(self) -> None:
        self.last = {}
        self.base = {}
        for process in self.processes():
            self.base[process.pid] = self.last[process.pid] = _cpu(process)


class ProcessTree(ProcessGroup):
    """A root process and all its descendants."""

    def __init__(self, name: str, pid: int) -> None:
        super().__init__(name)
        self.root = psutil.Process(pid)

    def processes(self) -> list[psutil.Process]:
        try:
            return [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def memory(self) -> list[dict[str, Any]]:
        """Resident memory per process (MB), with its role."""
        out = []
        for process in self.processes():
            try:
                rss = process.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            role = "root" if process.pid == self.root.pid else "worker"
            out.append({"pid": process.pid, "role": role, "rss_mb": round(rss / 2**20, 1)})
        return out


class MatchingProcesses(ProcessGroup):
    """Processes whose command line contains ``needle`` (e.g. ``" bench "`` for PostgreSQL
    backends of database ``bench``)."""

    def __init__(self, name: str, process_name: str, needle: str = "") -> None:
        super().__init__(name)
        self.process_name = process_name
        self.needle = needle

    def processes(self) -> list[psutil.Process]:
        found = []
        for process in psutil.process_iter(["name", "cmdline"]):
            info = process.info
            if not (info.get("name") or "").startswith(self.process_name):
                continue
            if self.needle and self.needle not in " ".join(info.get("cmdline") or []) + " ":
                continue
            found.append(process)
        return found


class PostgresBackends(MatchingProcesses):
    """PostgreSQL backends serving ``database``, plus the parallel workers they launch
    (``parallel worker for PID n``: their command line names the leader, not the database)."""

    def __init__(self, name: str, database: str) -> None:
        super().__init__(name, "postgres", f" {database} ")

    def processes(self) -> list[psutil.Process]:
        leaders = super().processes()
        pids = {p.pid for p in leaders}
        workers = []
        for process in psutil.process_iter(["name", "cmdline"]):
            line = " ".join(process.info.get("cmdline") or [])
            if "parallel worker for PID" in line:
                leader = line.rsplit(" ", 1)[-1]
                if leader.isdigit() and int(leader) in pids:
                    workers.append(process)
        return leaders + workers


class Sampler:
    """Samples the groups every ``interval`` seconds in a thread between start() and stop();
    reports CPU seconds per group and the server's peak utilisation (cores, over 1 s)."""

    def __init__(self, server: ProcessTree | None, others: list[ProcessGroup],
                 interval: float = 0.25) -> None:
        self.server = server
        self.others = others
        self.driver = psutil.Process(os.getpid())
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._series: list[tuple[float, float]] = []
        self._t0 = 0.0
        self._driver0 = 0.0
        self._machine0 = 0.0

    def start(self) -> None:
        self._t0 = time.perf_counter()
        self._machine0 = _machine_busy()
        self._driver0 = _cpu(self.driver)
        for group in self._groups():
            group.start()
        self._series = [(self._t0, 0.0)]
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)
        self._thread.start()

    def _groups(self) -> list[ProcessGroup]:
        return ([self.server] if self.server else []) + self.others

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            if self.server is not None:
                self._series.append((time.perf_counter(), self.server.read()))

    def stop(self) -> dict[str, Any]:
        """Stop sampling; CPU seconds and utilisation over the sampled interval."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        elapsed = time.perf_counter() - self._t0
        out: dict[str, Any] = {"elapsed_s": round(elapsed, 3),
                               "driver_cpu_s": round(_cpu(self.driver) - self._driver0, 3)}
        if self.server is not None:
            total = self.server.read()
            self._series.append((time.perf_counter(), total))
            out["server_cpu_s"] = round(total, 3)
            out["server_cores_mean"] = round(total / elapsed, 2) if elapsed else 0.0
            out["server_cores_peak_1s"] = round(self._peak(1.0), 2)
            out["server_memory"] = self.server.memory()
        ours = out["driver_cpu_s"] + out.get("server_cpu_s", 0.0)
        for group in self.others:
            out[f"{group.name}_cpu_s"] = round(group.read(), 3)
            ours += out[f"{group.name}_cpu_s"]
        busy = _machine_busy() - self._machine0
        if elapsed:
            # Everyone else on this machine (other engineers' test suites): the noise floor.
            out["machine_busy_cores"] = round(busy / elapsed, 2)
            out["others_cores"] = round(max(0.0, busy - ours) / elapsed, 2)
        return out

    def _peak(self, span: float) -> float:
        peak = 0.0
        series = self._series
        j = 0
        for i in range(len(series)):
            while series[i][0] - series[j][0] > span:
                j += 1
            dt = series[i][0] - series[j][0]
            if dt >= span * 0.75:
                peak = max(peak, (series[i][1] - series[j][1]) / dt)
        return peak
