"""The part of the benchmark that runs inside Django, on one database.

``python -m benchmarks measure`` runs in a process whose environment names
the benchmark database (DATABASE_URL), already migrated and empty. It loads
the practice, times the list, delivery and the bulk actions in that order,
because delivery needs patients with access who were never invited and the
bulk actions then set every patient back, and writes the results as JSON.
"""

import datetime
import json
import time
import warnings
from pathlib import Path

import django


def run(
    *,
    patients: int,
    seed: int,
    repeat: int,
    deliveries: int,
    work_dir: Path,
    phases: list[str],
) -> dict:
    # WhiteNoise warns that STATIC_ROOT is missing; static files are not timed.
    warnings.filterwarnings("ignore", message="No directory at")
    django.setup()

    from django.db import connection
    from django.utils import timezone

    from benchmarks import bulk_actions, delivery, loader
    from benchmarks.practice import Practice

    print(f"  loading {patients} patients", flush=True)
    now = timezone.now()
    practice = Practice(patients, seed=seed, today=timezone.localdate(now))
    admin = loader.create_admin()
    report = loader.load(practice, admin=admin, now=now)
    print(f"  loaded in {report.seconds:.1f} s", flush=True)
    analyze_seconds = _analyze(connection)

    results = {
        "vendor": connection.vendor,
        "server_version": _server_version(connection),
        "load": {**report.__dict__, "analyze_seconds": analyze_seconds},
    }
    if "list" in phases:
        results["list"] = _list(practice.today, admin, repeat)
    if "delivery" in phases:
        started = time.perf_counter()
        results["delivery"] = delivery.measure(
            deliveries, actor=admin, work_dir=work_dir
        )
        print(f"  delivery: {time.perf_counter() - started:.1f} s", flush=True)
    if "bulk" in phases:
        started = time.perf_counter()
        results["bulk"] = bulk_actions.measure(actor=admin)
        print(
            f"  bulk actions: {time.perf_counter() - started:.1f} s, of which "
            "setting the practice back took "
            f"{results['bulk']['reset_seconds']:.1f} s",
            flush=True,
        )
    results["measured_at"] = datetime.datetime.now(datetime.UTC).isoformat()
    return results


def _list(today, admin, repeat: int) -> list[dict]:
    from django.test import Client

    from benchmarks import listing

    client = Client()
    client.force_login(admin)
    list_results = []
    for case in listing.cases(today):
        started = time.perf_counter()
        result = listing.measure(client, case, repeat=repeat, warmup=3)
        print(
            f"  list {case.key}: {result.matched} matched, "
            f"{time.perf_counter() - started:.1f} s",
            flush=True,
        )
        list_results.append(result.as_dict())
    return list_results


def _analyze(connection) -> float:
    """Gather PostgreSQL's planner statistics, as autovacuum soon would.

    SQLite is left as the product leaves it: Django never runs ANALYZE there,
    so its planner works without statistics.
    """
    started = time.perf_counter()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
    return time.perf_counter() - started


def _server_version(connection) -> str:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SHOW server_version")
        else:
            cursor.execute("SELECT sqlite_version()")
        return cursor.fetchone()[0]


def main(args) -> None:
    results = run(
        patients=args.patients,
        seed=args.seed,
        repeat=args.repeat,
        deliveries=args.deliveries,
        work_dir=Path(args.work_dir),
        phases=args.phases,
    )
    Path(args.results).write_text(json.dumps(results, indent=1, default=str))
