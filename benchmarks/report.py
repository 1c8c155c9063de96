"""docs/benchmarks.md, written from the results of one run.

Every number on the page comes from results.json. The explanation of the
misses comes from benchmarks/analysis.md, written by the person who profiled
the run, and is copied in as it is.
"""

import math
import statistics
from pathlib import Path

ANALYSIS = Path(__file__).with_name("analysis.md")
NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
PHASES = ("import", "list", "delivery", "bulk")

# The targets, with the size of practice each one is stated for.
LIST_P95_MS = {"sqlite": (100, 100_000), "postgresql": (200, 1_000_000)}
LIST_SQL_RATIO = 2.0
ENABLE_SECONDS_PER_100K = 5.0
INVITE_SECONDS_PER_100K = 30.0
DELIVERY_SHARE = 0.6
IMPORT_PATIENTS_PER_SECOND = 5000
IMPORT_PEAK_MB = 300


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def _ms(value: float) -> str:
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def _count(value: int) -> str:
    return f"{value:,}"


def _verdict(passed: bool | None) -> str:
    if passed is None:
        return "not measured"
    return "pass" if passed else "**miss**"


def _times(case: dict) -> dict:
    server = case["server_ms"]
    sql = case["sql_ms"]
    return {
        "server_median": statistics.median(server),
        "server_p95": _percentile(server, 0.95),
        "sql_median": statistics.median(sql),
        "sql_p95": _percentile(sql, 0.95),
        "ratio": statistics.median(server) / statistics.median(sql),
    }


class Page:
    def __init__(self, results: dict):
        self.results = results
        self.patients = results["options"]["patients"]
        self.databases = results["databases"]
        self.lines: list[str] = []

    def having(self, phase: str) -> dict[str, dict]:
        """Return the databases whose results include PHASE, by name."""
        return {name: data for name, data in self.databases.items() if phase in data}

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        self.add("| " + " | ".join(header) + " |")
        self.add("|" + "|".join("---" for _ in header) + "|")
        for row in rows:
            self.add("| " + " | ".join(row) + " |")
        self.add("")

    def render(self) -> str:
        self.intro()
        self.machine()
        self.targets()
        self.list_section()
        self.bulk_section()
        self.delivery_section()
        self.import_section()
        self.analysis_section()
        self.plans_section()
        return "\n".join(self.lines).rstrip() + "\n"

    # --- Sections ---

    def intro(self) -> None:
        options = self.results["options"]
        self.add(
            "# Benchmarks",
            "",
            f"`make bench N={options['patients']}` measured the product on "
            f"{' and '.join(NAMES[name] for name in self.databases)} with a fictional "
            f"practice of {_count(self.patients)} patients (seed {options['seed']}). "
            "The benchmark is the `benchmarks` package (`python -m benchmarks`), and "
            "this page is written by it from that run's results, except the "
            "section “Why targets are missed”. Each measurement is set beside a "
            "floor measured on the same machine in the same run: the list's own "
            "SQL on a bare cursor, plain "
            "`smtplib`, plain `json` parsing.",
            "",
            f"The whole run took {self.results['seconds'] / 60:.1f} minutes.",
            "",
        )
        phases = options.get("phases", PHASES)
        if set(phases) != set(PHASES):
            self.add(f"Only these phases ran: {', '.join(phases)}.", "")

    def machine(self) -> None:
        machine = self.results["machine"]
        cpu = self.results["cpu"]
        versions = {
            NAMES[name]: data["server_version"]
            for name, data in self.databases.items()
            if "server_version" in data
        }
        others = cpu["others"] / cpu["available"] if cpu["available"] else 0
        shared = (
            f"Load average {' '.join(machine['load_average'])} at the start and "
            f"{' '.join(self.results['load_average_end'])} at the end. Of "
            f"{cpu['available']:.0f} CPU-seconds available during the run, the "
            f"benchmark's processes used {cpu['ours']:.0f}, PostgreSQL's server "
            f"{cpu['postgres']:.0f} (its work for other clients included) and other "
            f"processes {cpu['others']:.0f} ({others:.0%})."
        )
        if others > 0.05:
            shared += (
                " **The run shared the machine** with other work, so its times "
                "are slower than an idle machine would give, the floors as much as "
                "the product."
            )
        rows = [
            ["CPU", f"{machine['cpu_model']}, {machine['cpu_count']} cores"],
            ["Memory", f"{machine['memory_gib']} GiB"],
            ["OS", machine["os"]],
            ["Python", machine["python"]],
            *([name, version] for name, version in versions.items()),
            ["Date", machine["date"]],
            ["Other load", shared],
        ]
        self.add("## Machine", "")
        self.table(["", ""], rows)

    def targets(self) -> None:
        rows = []
        for name, data in self.databases.items():
            rows.extend(self._target_rows(name, data))
        self.add(
            "## Targets",
            "",
            "A bulk action's time is scaled in proportion to 100,000 patients "
            "changed, which actions that work in fixed chunks follow closely. "
            "The list's p95 is that of its slowest case.",
            "",
        )
        self.table(["Database", "Target", "Measured", "Result"], rows)

    def _target_rows(self, name: str, data: dict) -> list[list[str]]:
        label = NAMES[name]
        rows = []
        if "list" in data:
            rows.extend(self._list_targets(label, name, data))
        if "bulk" in data:
            rows.extend(self._bulk_targets(label, data))
        if "delivery" in data:
            rows.extend(self._delivery_targets(label, data))
        if "import" in data:
            rows.extend(self._import_targets(label, data))
        return rows

    def _list_targets(self, label: str, name: str, data: dict) -> list[list[str]]:
        rows = []
        times = [_times(case) for case in data["list"]]
        worst_p95 = max(time["server_p95"] for time in times)
        limit, size = LIST_P95_MS[name]
        measured = f"slowest case {_ms(worst_p95)} ms at {_count(self.patients)}"
        passed = worst_p95 < limit if self.patients >= size else None
        rows.append(
            [label, f"List p95 under {limit} ms at {_count(size)} patients",
             measured, _verdict(passed)]
        )  # fmt: skip
        within = sum(1 for time in times if time["ratio"] <= LIST_SQL_RATIO)
        worst = max(time["ratio"] for time in times)
        rows.append(
            [label, "List within 2x of its raw SQL (medians)",
             f"{within} of {len(times)} cases; worst {worst:.1f}x",
             _verdict(within == len(times))]
        )  # fmt: skip
        return rows

    def _bulk_targets(self, label: str, data: dict) -> list[list[str]]:
        rows = []
        for key, target, what in (
            ("enable", ENABLE_SECONDS_PER_100K, "Enable access for 100,000 patients"),
            ("invite", INVITE_SECONDS_PER_100K, "Queue 100,000 invitations"),
        ):
            action = data["bulk"][key]
            scaled = action["seconds"] * 100_000 / max(action["changed"], 1)
            rows.append(
                [label, f"{what} under {target:.0f} s",
                 f"{scaled:.1f} s ({action['seconds']:.1f} s for "
                 f"{_count(action['changed'])})", _verdict(scaled < target)]
            )  # fmt: skip
        return rows

    def _delivery_targets(self, label: str, data: dict) -> list[list[str]]:
        rows = []
        plain, *workers = data["delivery"]["runs"]
        for run in workers:
            share = run["per_second"] / plain["per_second"]
            rows.append(
                [label, f"Delivery with {run['label']} at least 60% of smtplib",
                 f"{share:.0%} ({run['per_second']:.0f} vs "
                 f"{plain['per_second']:.0f} messages/s)",
                 _verdict(share >= DELIVERY_SHARE)]
            )  # fmt: skip
        return rows

    def _import_targets(self, label: str, data: dict) -> list[list[str]]:
        rows = []
        imported = data["import"]["import"]
        rate = imported["summary"]["patients"]["created"] / imported["seconds"]
        rows.append(
            [label, f"Import at least {_count(IMPORT_PATIENTS_PER_SECOND)} patients/s",
             f"{rate:,.0f} patients/s", _verdict(rate >= IMPORT_PATIENTS_PER_SECOND)]
        )  # fmt: skip
        peak = imported["peak_rss_mb"]
        rows.append(
            [label, f"Import peak memory under {IMPORT_PEAK_MB} MB",
             f"{peak:.0f} MB", _verdict(peak < IMPORT_PEAK_MB)]
        )  # fmt: skip
        return rows

    def list_section(self) -> None:
        if not self.having("list"):
            return
        repeat = self.results["options"]["repeat"]
        self.add(
            "## 1. The onboarding list",
            "",
            "Each case requests the list's first page through Django's test `Client`, "
            "logged in as a staff user with the Administrator role, with `DEBUG` "
            "off, in the benchmark's process. The server time covers middleware, "
            "session, filter form, queries and template. Three untimed requests "
            f"come first, then {repeat} timed ones. The page's working "
            "statements, its rows and the snapshot counts, were captured with "
            "their parameters from one request and run again on a cursor, "
            f"{repeat} times after 3 untimed runs: that is the SQL time. The "
            "ratio is server median over SQL median. Queries is every statement "
            "of one request. Times in milliseconds.",
            "",
        )
        for name, data in self.having("list").items():
            rows = []
            for case in data["list"]:
                time = _times(case)
                rows.append(
                    [case["label"], _count(case["matched"]), str(case["queries"]),
                     _ms(time["server_median"]), _ms(time["server_p95"]),
                     _ms(time["sql_median"]), _ms(time["sql_p95"]),
                     f"{time['ratio']:.1f}x"]
                )  # fmt: skip
            self.add(f"### {NAMES[name]}", "")
            self.table(
                ["Case", "Matched", "Queries", "Server median", "Server p95",
                 "SQL median", "SQL p95", "Ratio"],
                rows,
            )  # fmt: skip

    def bulk_section(self) -> None:
        if not self.having("bulk"):
            return
        chunk_size = next(iter(self.having("bulk").values()))["bulk"]["enable"][
            "chunk_size"
        ]
        self.add(
            "## 2. Bulk actions on every matching patient",
            "",
            "The practice is first set back to the start of onboarding: no patient "
            "has portal access or a login, and pending invitations are revoked. "
            "The filter “Has a username: no” then matches every patient. Each "
            "action runs as a confirmed “all matching” bulk action does: the "
            "filter form is cleaned, `filter_patients()` builds the queryset and "
            "`patients.actions.claim()` takes a one-time key. Then "
            "`patients.jobs.start()` and `patients.jobs.run()` carry out the whole "
            f"job in the benchmark's process, in chunks of {chunk_size} patients, "
            "each calling `enable_access()` or `send_invitations()`. Enabling "
            "plans the chunk in one query, then re-checks and changes 500 "
            "patients at a time in one UPDATE; sending locks and checks 500 "
            "patients at a time. Both write the audit records, and sending the "
            "invitations, with COPY on PostgreSQL and executemany on SQLite, and "
            "queues the delivery tasks in the same transaction.",
            "",
        )
        rows = []
        for name, data in self.having("bulk").items():
            for key in ("enable", "invite"):
                action = data["bulk"][key]
                skipped = ", ".join(
                    f"{reason} {_count(count)}"
                    for reason, count in action["skipped"].items()
                )
                rows.append(
                    [NAMES[name], action["label"], _count(action["matched"]),
                     _count(action["changed"]), skipped,
                     f"{action['seconds']:.1f}",
                     f"{action['changed'] / action['seconds']:,.0f}"]
                )  # fmt: skip
        self.table(
            ["Database", "Action", "Matched", "Changed", "Skipped", "Seconds",
             "Patients/s"],
            rows,
        )  # fmt: skip

    def delivery_section(self) -> None:
        if not self.having("delivery"):
            return
        any_data = next(iter(self.having("delivery").values()))["delivery"]
        self.add(
            "## 3. Delivery",
            "",
            f"{_count(any_data['messages'])} invitations per run, queued with "
            "`send_invitations()` for patients who had access and no invitation, "
            "then sent by worker processes (`"
            f"{any_data['worker_command']}`) to an SMTP server on 127.0.0.1 "
            "(aiosmtpd in a process of its own, which counts and discards). Time "
            "runs from starting the workers until the last one exits. The floor "
            "builds the same number of text and HTML messages of the same size "
            "with the standard `email` package and sends them with `smtplib` "
            "over one connection. Afterwards the database must show every "
            "invitation sent once and the server must have received one message "
            "per recipient.",
            "",
        )
        rows = []
        for name, data in self.having("delivery").items():
            plain = data["delivery"]["runs"][0]
            for run in data["delivery"]["runs"]:
                sink = run["sink"]
                exactly_once = (
                    sink["messages"] == run["messages"]
                    and sink["recipients"] == run["messages"]
                    and sink["repeated"] == 0
                    and (
                        run["workers"] == 0
                        or run["sent_in_database"] == run["messages"]
                    )
                )
                rows.append(
                    [NAMES[name], run["label"], _count(run["messages"]),
                     f"{run['seconds']:.1f}", f"{run['per_second']:.0f}",
                     f"{run['per_second'] / plain['per_second']:.0%}",
                     "yes" if exactly_once else "**no**"]
                )  # fmt: skip
        self.table(
            ["Database", "Sender", "Messages", "Seconds", "Messages/s",
             "Of smtplib", "Each sent once"],
            rows,
        )  # fmt: skip
        starts = ", ".join(
            f"{NAMES[name]} {data['delivery']['worker_start_seconds']:.1f} s"
            for name, data in self.having("delivery").items()
        )
        self.add(
            f"A worker that finds the queue empty takes {starts} from start to "
            "exit; that start-up is part of each worker run's time.",
            "",
        )

    def import_section(self) -> None:
        if not self.having("import"):
            return
        self.add(
            "## 4. Import",
            "",
            "A FHIR R4 Bulk Data export of the same practice (Practitioner, "
            "Patient and Appointment NDJSON files) imported with `manage.py "
            "import_patients FOLDER --json` as a child process into an empty, "
            "migrated database. Peak memory is the child's maximum resident set "
            "size from `os.wait4()`. The floor reads the same files line by line "
            "with `json.loads()`.",
            "",
        )
        rows = []
        for name, data in self.having("import").items():
            result = data["import"]
            imported = result["import"]
            summary = imported["summary"]
            megabytes = result["bytes"] / 1_000_000
            seconds = imported["seconds"]
            rows.append(
                [NAMES[name], f"{megabytes:.0f}",
                 _count(summary["patients"]["created"]),
                 _count(summary["appointments"]["created"]), f"{seconds:.1f}",
                 f"{summary['patients']['created'] / seconds:,.0f}",
                 f"{megabytes / seconds:.2f}",
                 f"{result['parse']['seconds']:.1f}",
                 f"{seconds / result['parse']['seconds']:.0f}x",
                 f"{imported['peak_rss_mb']:.0f}"]
            )  # fmt: skip
        self.table(
            ["Database", "MB", "Patients", "Appointments", "Seconds", "Patients/s",
             "MB/s", "json only, s", "Import/json", "Peak MB"],
            rows,
        )  # fmt: skip

    def plans_section(self) -> None:
        if not self.having("list"):
            return
        self.add(
            "## Query plans",
            "",
            "The plan of each list case's statements, as the database chose "
            "it in this run: `EXPLAIN (ANALYZE, BUFFERS)` on PostgreSQL, `EXPLAIN "
            "QUERY PLAN` on SQLite. “Reads whole” names a table read without an "
            "index; U0 is the table of a subquery, as Django names it.",
            "",
        )
        for name, data in self.having("list").items():
            rows = [
                [case["label"], case["plan_summary"]["rows"],
                 "; then ".join(
                     summary for name, summary in case["plan_summary"].items()
                     if name != "rows"
                 )]
                for case in data["list"]
            ]  # fmt: skip
            self.add(f"### {NAMES[name]}", "")
            self.table(["Case", "Rows", "Counts"], rows)
            self.add("<details><summary>Full plans</summary>", "")
            for case in data["list"]:
                for statement, plan in case["plans"].items():
                    self.add(
                        f"{case['label']}, {statement}:", "", "```", plan, "```", ""
                    )
            self.add("</details>", "")

    def analysis_section(self) -> None:
        if ANALYSIS.exists():
            self.add(ANALYSIS.read_text().strip(), "")


def render(results: dict) -> str:
    return Page(results).render()
