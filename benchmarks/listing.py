"""Timing the onboarding list against the SQL it runs.

Each case is one set of query parameters. The page is requested through
Django's test Client as a logged-in administrator, so the time includes the
middleware, the session, the form, the queries and the template. Then the
two statements that do the work, the page's rows and the snapshot counts,
are captured with their parameters and run again on a bare cursor, which is
the floor the page is compared with.
"""

import datetime
import math
import re
import statistics
import time
from dataclasses import asdict, dataclass, field

from django.db import connection
from django.test import Client
from django.urls import reverse

from patients.models import Patient, Practitioner, Tag

TOTAL_PATTERN = re.compile(r'<dd id="count-total">(\d+)</dd>')


@dataclass
class Case:
    key: str
    label: str
    params: dict


@dataclass
class Statement:
    sql: str
    params: tuple


@dataclass
class ListResult:
    key: str
    label: str
    params: dict
    matched: int
    queries: int
    server_ms: list[float]
    sql_ms: list[float]
    plans: dict[str, str] = field(default_factory=dict)
    plan_summary: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def percentile(values: list[float], share: float) -> float:
    """Return the nearest-rank percentile SHARE (0 to 1) of VALUES."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def summarize(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "p95": percentile(values, 0.95)}


def cases(today: datetime.date) -> list[Case]:
    """Return the filter combinations timed, with ids looked up in the database."""
    tag = Tag.objects.get(name="Diabetes program")
    # The practice generator gives the first clinician the most patients.
    provider_id = Practitioner.objects.order_by("pk").values_list("pk", flat=True)[0]
    search = Patient.objects.order_by("pk").values_list("family_name", flat=True)[0]
    after = today.isoformat()
    before = (today + datetime.timedelta(days=30)).isoformat()
    return [
        Case("all", "No filter, sorted by name", {}),
        Case("state", "Portal state: enabled, not invited", {"state": "enabled"}),
        Case(
            "no_access",
            "No portal access and no username",
            {"access": "no", "username": "no"},
        ),
        Case("tag", "Tag: Diabetes program", {"tags": [str(tag.pk)]}),
        Case(
            "provider_dates",
            "Primary provider and an appointment in the next 30 days",
            {
                "provider": str(provider_id),
                "appointment_after": after,
                "appointment_before": before,
            },
        ),
        Case("search", f"Name search “{search.lower()}”", {"q": search.lower()}),
        Case(
            "shared_email",
            "Safety check: address shared with another person",
            {"check": "shared_email"},
        ),
        Case("sort_login", "Sorted by last login, newest first", {"sort": "-login"}),
    ]


class _Recorder:
    """An execute wrapper that keeps every statement with its parameters."""

    def __init__(self):
        self.statements: list[Statement] = []

    def __call__(self, execute, sql, params, many, context):
        self.statements.append(Statement(sql, tuple(params or ())))
        return execute(sql, params, many, context)


def _list_statements(statements: list[Statement]) -> dict[str, Statement]:
    """Pick out the page's rows query and its count queries, by name."""
    found = {}
    for statement in statements:
        sql = statement.sql
        if '"patients_patient"' not in sql:
            continue
        if "portal_state_value" in sql and "LIMIT" in sql:
            found["rows"] = statement
        elif "COUNT(" in sql:
            name = "counts" if "counts" not in found else f"counts {len(found)}"
            found[name] = statement
    if "rows" not in found or "counts" not in found:
        raise RuntimeError(
            "The list request ran no rows query or no count query; the "
            "benchmark's query matching needs updating."
        )
    return found


def _request(client: Client, params: dict) -> tuple[float, bytes]:
    started = time.perf_counter()
    response = client.get(reverse("onboarding"), params)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(
            f"The onboarding list returned status {response.status_code} for {params}."
        )
    return elapsed * 1000, response.content


def _run_raw(statements: list[Statement]) -> float:
    started = time.perf_counter()
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement.sql, statement.params)
            cursor.fetchall()
    return (time.perf_counter() - started) * 1000


def measure(client: Client, case: Case, *, repeat: int, warmup: int) -> ListResult:
    for _ in range(warmup):
        _request(client, case.params)

    recorder = _Recorder()
    with connection.execute_wrapper(recorder):
        _, content = _request(client, case.params)
    total = TOTAL_PATTERN.search(content.decode())
    if total is None:
        raise RuntimeError(f"The list page for {case.params} shows no patient count.")
    work = _list_statements(recorder.statements)

    server_ms = [_request(client, case.params)[0] for _ in range(repeat)]
    statements = list(work.values())
    for _ in range(warmup):
        _run_raw(statements)
    sql_ms = [_run_raw(statements) for _ in range(repeat)]

    result = ListResult(
        key=case.key,
        label=case.label,
        params=case.params,
        matched=int(total.group(1)),
        queries=len(recorder.statements),
        server_ms=server_ms,
        sql_ms=sql_ms,
    )
    for name, statement in work.items():
        result.plans[name] = explain(statement)
        result.plan_summary[name] = summarize_plan(
            result.plans[name], connection.vendor
        )
    return result


def explain(statement: Statement) -> str:
    """Return the database's plan for STATEMENT, run for real on PostgreSQL."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "EXPLAIN (ANALYZE, BUFFERS) " + statement.sql, statement.params
            )
            return "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("EXPLAIN QUERY PLAN " + statement.sql, statement.params)
        rows = cursor.fetchall()
    depth = {0: -1}
    lines = []
    for node_id, parent, _, detail in rows:
        depth[node_id] = depth.get(parent, -1) + 1
        lines.append("  " * depth[node_id] + detail)
    return "\n".join(lines)


PG_INDEX = re.compile(r"(?:Index Only Scan|Index Scan|Bitmap Index Scan)(?: Backward)?"
                      r" (?:using|on) (\w+)")  # fmt: skip
PG_SEQ = re.compile(r"(?:Parallel )?Seq Scan on (\w+)")
SQLITE_INDEX = re.compile(r"USING (?:COVERING )?INDEX (\w+)")
SQLITE_SCAN = re.compile(r"^\s*SCAN (\w+)(.*)$", re.MULTILINE)


def summarize_plan(plan: str, vendor: str) -> str:
    """Name the indexes a plan uses, the tables it reads whole and its sorts."""
    if vendor == "postgresql":
        indexes = PG_INDEX.findall(plan)
        scans = PG_SEQ.findall(plan)
        sorts = "Sort Method" in plan
    else:
        indexes = SQLITE_INDEX.findall(plan)
        scans = [
            table for table, rest in SQLITE_SCAN.findall(plan) if "USING" not in rest
        ]
        sorts = "TEMP B-TREE" in plan
    parts = []
    if indexes:
        parts.append("indexes " + ", ".join(dict.fromkeys(indexes)))
    if scans:
        parts.append("reads whole " + ", ".join(dict.fromkeys(scans)))
    if sorts:
        parts.append("sorts")
    return "; ".join(parts) or "no table access"
