"""The benchmark's databases: a SQLite file and a PostgreSQL database it owns.

Both are created empty and migrated with ``manage.py migrate`` before each
phase, and removed at the end. The PostgreSQL database is dropped with
everything in it, so its name must contain "bench".
"""

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/portal_bench"
# Every process of one run shares this key, because a worker derives the
# invitation links from the key of the process that created the invitations.
SECRET_KEY = "benchmark-only-secret-key-never-used-by-a-real-site-0123456789"  # noqa: S105


@dataclass
class BenchDatabase:
    name: str
    url: str
    # The SQLite file, or None for PostgreSQL.
    path: Path | None = None

    @property
    def is_postgresql(self) -> bool:
        return self.name == "postgresql"

    def environment(self) -> dict[str, str]:
        """Return the environment of every Django process run on this database."""
        return {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.dev",
            "DEBUG": "false",
            "SECRET_KEY": SECRET_KEY,
            "DATABASE_URL": self.url,
            # The test Client's host name, and staff log in with a password
            # only, so that the list can be requested as a logged-in user.
            "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
            "STAFF_TWO_FACTOR": "false",
            "LOG_LEVEL": "WARNING",
            "EMAIL_URL": "console://",
        }

    def recreate(self) -> None:
        self.drop()
        if self.is_postgresql:
            with _maintenance_connection(self.url) as connection:
                connection.execute(
                    sql.SQL("CREATE DATABASE {}").format(
                        sql.Identifier(_name(self.url))
                    )
                )
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def drop(self) -> None:
        if self.is_postgresql:
            with _maintenance_connection(self.url) as connection:
                connection.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(_name(self.url))
                    )
                )
        else:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    def migrate(self) -> None:
        subprocess.run(  # noqa: S603 - the product's own command
            [sys.executable, str(ROOT / "manage.py"), "migrate", "--verbosity=0"],
            env=self.environment(),
            check=True,
        )

    def server_version(self) -> str:
        if not self.is_postgresql:
            import sqlite3

            return sqlite3.sqlite_version
        with _maintenance_connection(self.url) as connection:
            return connection.execute("SHOW server_version").fetchone()[0]


def _name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def _maintenance_connection(url: str) -> psycopg.Connection:
    """Connect to the server's "postgres" database, where others are created."""
    parts = urlsplit(url)
    maintenance = urlunsplit(parts._replace(path="/postgres"))
    return psycopg.connect(maintenance, autocommit=True)


def sqlite_database(work_dir: Path) -> BenchDatabase:
    path = (work_dir / "portal_bench.sqlite3").resolve()
    return BenchDatabase("sqlite", f"sqlite:///{path}", path)


def postgresql_database(url: str) -> BenchDatabase:
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ValueError(f"BENCH_DATABASE_URL {url!r} is not a postgres:// URL.")
    name = _name(url)
    if "bench" not in name:
        raise ValueError(
            f"The benchmark drops and recreates the database {name!r}, so its name "
            "must contain “bench”. Point BENCH_DATABASE_URL at such a database."
        )
    return BenchDatabase("postgresql", url)
