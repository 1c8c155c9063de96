"""The machine a run measured, and how busy other processes kept it meanwhile.

The CPU time of the whole machine comes from /proc/stat, the benchmark's own
from getrusage() of this process and its children, and PostgreSQL's from
/proc/PID/stat of its processes (its postmaster counts the server processes
that ended). What is left was used by other people's work.
"""

import datetime
import os
import platform
import resource
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def describe() -> dict:
    cpuinfo = _read("/proc/cpuinfo")
    models = [
        line.split(":", 1)[1].strip()
        for line in cpuinfo.splitlines()
        if line.startswith("model name")
    ]
    memory_kb = next(
        (
            int(line.split()[1])
            for line in _read("/proc/meminfo").splitlines()
            if line.startswith("MemTotal:")
        ),
        0,
    )
    os_name = next(
        (
            line.split("=", 1)[1].strip().strip('"')
            for line in _read("/etc/os-release").splitlines()
            if line.startswith("PRETTY_NAME=")
        ),
        platform.system(),
    )
    return {
        "cpu_model": models[0] if models else platform.processor() or "unknown",
        "cpu_count": len(models) or os.cpu_count(),
        "memory_gib": round(memory_kb / 1024 / 1024, 1),
        "os": f"{os_name}, Linux {platform.release()}",
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average": _read("/proc/loadavg").split()[:3],
    }


@dataclass
class CpuSnapshot:
    busy: float
    total: float
    ours: float
    postgres: float


def _machine_seconds() -> tuple[float, float]:
    fields = [int(value) for value in _read("/proc/stat").splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields) - idle) / TICKS, sum(fields) / TICKS


def _postgres_seconds() -> float:
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = _read(f"/proc/{entry.name}/stat")
        if not stat or "(postgres)" not in stat:
            continue
        # Fields after the command: utime, stime, cutime, cstime are 14 to 17.
        after_name = stat.rsplit(")", 1)[1].split()
        total += sum(int(value) for value in after_name[11:15])
    return total / TICKS


def _our_seconds() -> float:
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def cpu_snapshot() -> CpuSnapshot:
    busy, total = _machine_seconds()
    return CpuSnapshot(busy, total, _our_seconds(), _postgres_seconds())


def cpu_use(start: CpuSnapshot, end: CpuSnapshot) -> dict:
    """Return the CPU seconds used between two snapshots, split by process group."""
    busy = end.busy - start.busy
    ours = end.ours - start.ours
    postgres = max(0.0, end.postgres - start.postgres)
    return {
        "available": end.total - start.total,
        "busy": busy,
        "ours": ours,
        "postgres": postgres,
        "others": max(0.0, busy - ours - postgres),
    }
