"""The importer on a FHIR Bulk Data export, against parsing the same files.

``manage.py import_patients`` runs as a child process on an empty, migrated
database. Its wall time gives patients and megabytes per second, and
os.wait4() gives the child's own peak resident memory. The floor is reading
the same files line by line with the standard json module.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.databases import ROOT, BenchDatabase


def parse_only(paths: list[Path]) -> dict:
    started = time.perf_counter()
    resources = 0
    for path in paths:
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                json.loads(line)
                resources += 1
    return {"seconds": time.perf_counter() - started, "resources": resources}


def run_import(database: BenchDatabase, folder: Path, log_path: Path) -> dict:
    command = [sys.executable, str(ROOT / "manage.py"), "import_patients",
               str(folder), "--json"]  # fmt: skip
    with log_path.open("w") as log:
        started = time.perf_counter()
        process = subprocess.Popen(  # noqa: S603 - the product's own command
            command, env=database.environment(), stdout=subprocess.PIPE, stderr=log
        )
        output = process.stdout.read()
        # wait4 reaps this child alone and returns its own resource usage,
        # where getrusage(RUSAGE_CHILDREN) would mix in earlier children.
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(
            f"import_patients exited with {process.returncode}; see {log_path}."
        )
    summary = json.loads(output)
    return {
        "seconds": seconds,
        # ru_maxrss is in kilobytes on Linux.
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "summary": summary,
    }


def measure(database: BenchDatabase, paths: list[Path], work_dir: Path) -> dict:
    """Import the export into the fresh DATABASE and parse it, timing both."""
    folder = paths[0].parent
    size = sum(path.stat().st_size for path in paths)
    floor = parse_only(paths)
    imported = run_import(database, folder, work_dir / f"import-{database.name}.log")
    return {"bytes": size, "parse": floor, "import": imported}
