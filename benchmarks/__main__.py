"""``python -m benchmarks``: run the benchmark and write docs/benchmarks.md.

For each database it migrates an empty database and times the importer,
then migrates another empty one and runs the rest in a child process
(``measure``), which loads the practice and times the list, delivery and the
bulk actions. ``--phases`` leaves out the ones not named. The results are
kept as JSON beside the databases, and the Markdown page is written from
them (``report`` writes it again).
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import databases, machine

ROOT = databases.ROOT
PHASES = ("import", "list", "delivery", "bulk")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number.")
    return value


def _phases(text: str) -> list[str]:
    chosen = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in chosen if name not in PHASES]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            f"{text!r} names no phase or unknown ones; choose from {', '.join(PHASES)}."
        )
    return chosen


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    commands = parser.add_subparsers(dest="command")

    run = commands.add_parser("run", help="Run the benchmark (the default).")
    run.add_argument(
        "--patients", type=_positive, default=100_000,
        help="Patients in the practice (default 100000).",
    )  # fmt: skip
    run.add_argument(
        "--databases", default="sqlite,postgresql",
        help="Comma-separated: sqlite, postgresql (default both). PostgreSQL is "
        "at BENCH_DATABASE_URL, default " + databases.DEFAULT_POSTGRES_URL,
    )  # fmt: skip
    run.add_argument("--seed", type=int, default=1, help="Seed of the practice.")
    run.add_argument(
        "--repeat", type=_positive, default=30,
        help="Timed requests per list case, after 3 untimed (default 30).",
    )  # fmt: skip
    run.add_argument(
        "--deliveries", type=_positive, default=2000,
        help="Invitations sent in each delivery run (default 2000).",
    )  # fmt: skip
    run.add_argument(
        "--phases", type=_phases, default=list(PHASES),
        help="Comma-separated phases to run (default all): " + ", ".join(PHASES),
    )  # fmt: skip
    run.add_argument("--output", default="docs/benchmarks.md", help="Markdown file.")
    run.add_argument("--work-dir", default="var/bench", help="Databases and logs.")

    measure = commands.add_parser("measure", help="Internal: one database's run.")
    measure.add_argument("--patients", type=_positive, required=True)
    measure.add_argument("--seed", type=int, required=True)
    measure.add_argument("--repeat", type=_positive, required=True)
    measure.add_argument("--deliveries", type=_positive, required=True)
    measure.add_argument("--work-dir", required=True)
    measure.add_argument("--results", required=True)
    measure.add_argument("--phases", type=_phases, default=list(PHASES))

    sink = commands.add_parser("sink", help="Internal: the SMTP sink process.")
    sink.add_argument("--port", type=int, required=True)
    sink.add_argument("--counts", required=True)

    report = commands.add_parser("report", help="Write the Markdown from results.")
    report.add_argument("results", help="The results.json of an earlier run.")
    report.add_argument("--output", default="docs/benchmarks.md")
    return parser


def _chosen_databases(names: str, work_dir: Path) -> list[databases.BenchDatabase]:
    chosen = []
    for name in (part.strip() for part in names.split(",") if part.strip()):
        if name == "sqlite":
            chosen.append(databases.sqlite_database(work_dir))
        elif name == "postgresql":
            url = os.environ.get("BENCH_DATABASE_URL", databases.DEFAULT_POSTGRES_URL)
            chosen.append(databases.postgresql_database(url))
        else:
            raise SystemExit(
                f"--databases: {name!r} is not a database the benchmark knows; "
                "use sqlite, postgresql or both, separated by a comma."
            )
    if not chosen:
        raise SystemExit("--databases: name at least one of sqlite, postgresql.")
    return chosen


def _export(args, work_dir: Path) -> tuple[list[Path], float]:
    from benchmarks.practice import Practice, write_fhir_export

    folder = work_dir / "fhir-export"
    started = time.perf_counter()
    practice = Practice(args.patients, seed=args.seed, today=datetime.date.today())
    paths = write_fhir_export(practice, folder)
    return list(paths.values()), time.perf_counter() - started


def _measure_database(args, database, work_dir: Path) -> dict:
    from benchmarks import importing

    results = {}
    if "import" in args.phases:
        print(f"{database.name}: import", flush=True)
        database.recreate()
        database.migrate()
        results["import"] = importing.measure(database, args.export_paths, work_dir)
        print(f"  import: {results['import']['import']['seconds']:.1f} s", flush=True)

    in_django = [phase for phase in args.phases if phase != "import"]
    if in_django:
        print(f"{database.name}: {', '.join(in_django)}", flush=True)
        database.recreate()
        database.migrate()
        results_path = work_dir / f"results-{database.name}.json"
        subprocess.run(  # noqa: S603 - the product's own command, fixed arguments
            [sys.executable, "-m", "benchmarks", "measure",
             "--patients", str(args.patients), "--seed", str(args.seed),
             "--repeat", str(args.repeat), "--deliveries", str(args.deliveries),
             "--work-dir", str(work_dir), "--results", str(results_path),
             "--phases", ",".join(in_django)],
            env=database.environment(),
            cwd=ROOT,
            check=True,
        )  # fmt: skip
        results.update(json.loads(results_path.read_text()))
    database.drop()
    return results


def run(args) -> None:
    from benchmarks import report

    work_dir = (ROOT / args.work_dir).resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    chosen = _chosen_databases(args.databases, work_dir)

    started = time.perf_counter()
    cpu_start = machine.cpu_snapshot()
    results = {
        "machine": machine.describe(),
        "options": {
            "patients": args.patients,
            "seed": args.seed,
            "repeat": args.repeat,
            "deliveries": args.deliveries,
            "databases": [database.name for database in chosen],
            "phases": args.phases,
        },
        "databases": {},
    }
    if "import" in args.phases:
        print(f"Writing a FHIR export of {args.patients} patients", flush=True)
        args.export_paths, results["export_seconds"] = _export(args, work_dir)
        print(f"  written in {results['export_seconds']:.1f} s", flush=True)
    for database in chosen:
        results["databases"][database.name] = _measure_database(
            args, database, work_dir
        )
    results["cpu"] = machine.cpu_use(cpu_start, machine.cpu_snapshot())
    results["seconds"] = time.perf_counter() - started
    results["load_average_end"] = machine.describe()["load_average"]

    results_path = work_dir / "results.json"
    results_path.write_text(json.dumps(results, indent=1, default=str))
    output = ROOT / args.output
    output.write_text(report.render(results))
    print(f"Wrote {output.relative_to(ROOT)} in {results['seconds']:.0f} s", flush=True)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0].startswith("-"):
        argv = ["run", *argv]
    args = _parser().parse_args(argv)
    if args.command == "run":
        run(args)
    elif args.command == "measure":
        from benchmarks import measure

        measure.main(args)
    elif args.command == "sink":
        from benchmarks import sink

        sink.serve(args.port, Path(args.counts))
    elif args.command == "report":
        from benchmarks import report

        results = json.loads(Path(args.results).read_text())
        Path(args.output).write_text(report.render(results))


if __name__ == "__main__":
    main()
