"""CACHE_URL, and the patients' attempt counters shared between processes."""

import json
import os
import secrets
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from config.caches import CACHE_TABLE, parse_cache_url
from tests.production import (
    manage,
    postgres_database,  # noqa: F401
    production_env,
    run_python,
    skip_or_fail,
)

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

# Counts COUNT date-of-birth attempts from one client address with the
# product's own counter and prints whether each was allowed.
ATTEMPTS_SCRIPT = """
import json, os
from django.test import RequestFactory
from portal.ratelimit import count_attempt
request = RequestFactory().post("/invite/", REMOTE_ADDR="192.0.2.7")
scope, count = os.environ["TEST_SCOPE"], int(os.environ["TEST_COUNT"])
print(json.dumps([count_attempt(request, scope) for _ in range(count)]))
"""


@pytest.mark.parametrize(
    ("url", "backend", "location"),
    [
        ("db://", "db.DatabaseCache", CACHE_TABLE),
        ("DB://", "db.DatabaseCache", CACHE_TABLE),
        ("redis://127.0.0.1:6379/0", "redis.RedisCache", "redis://127.0.0.1:6379/0"),
        (
            "rediss://:secret@cache.internal:6380/1",
            "redis.RedisCache",
            "rediss://:secret@cache.internal:6380/1",
        ),
        ("locmem://", "locmem.LocMemCache", None),
    ],
)
def test_cache_url_parses(url, backend, location):
    cache = parse_cache_url(url)

    assert cache["BACKEND"] == f"django.core.cache.backends.{backend}"
    assert cache.get("LOCATION") == location


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "memcached://127.0.0.1:11211",
            "CACHE_URL='memcached://127.0.0.1:11211' has the scheme 'memcached', "
            "which is not supported. Use db://, redis://",
        ),
        ("127.0.0.1:6379", "CACHE_URL='127.0.0.1:6379' has no scheme. Use db://"),
        ("redis:///0", "CACHE_URL='redis:///0' has no host name"),
        ("db://my_cache", "CACHE_URL='db://my_cache' names a table"),
    ],
)
def test_cache_url_error_names_value(url, message):
    with pytest.raises(ImproperlyConfigured) as raised:
        parse_cache_url(url)

    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "memcached://portal:hunter2-secret@10.0.0.5:11211",
            "'memcached://portal:***@10.0.0.5:11211'",
        ),
        ("redis://:hunter2-secret@/0", "'redis://:***@/0'"),
        ("portal:hunter2-secret@10.0.0.5:6379", "'portal:***@10.0.0.5:6379'"),
    ],
)
def test_cache_url_error_hides_password(url, shown):
    with pytest.raises(ImproperlyConfigured) as raised:
        parse_cache_url(url)

    assert "hunter2-secret" not in str(raised.value)
    assert shown in str(raised.value)


@pytest.mark.django_db
def test_migrate_creates_cache_table():
    assert CACHE_TABLE in connection.introspection.table_names()


def test_production_cache_is_database(tmp_path):
    env = production_env(f"sqlite:///{tmp_path / 'portal.sqlite3'}")
    script = "from django.conf import settings\nprint(settings.CACHES['default'])"

    completed = run_python(script, env, tmp_path)

    assert completed.returncode == 0, completed.stderr
    assert "django.core.cache.backends.db.DatabaseCache" in completed.stdout


def test_bad_cache_url_stops_startup(tmp_path):
    env = production_env(
        f"sqlite:///{tmp_path / 'portal.sqlite3'}", CACHE_URL="memcache://127.0.0.1"
    )

    completed = run_python("", env, tmp_path)

    assert completed.returncode != 0
    assert "CACHE_URL='memcache://127.0.0.1' has the scheme 'memcache'" in (
        completed.stderr
    )


def _deploy_check(env, tmp_path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "django", "check", "--deploy"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_deploy_check_warns_about_per_process_cache(tmp_path):
    env = production_env(
        f"sqlite:///{tmp_path / 'portal.sqlite3'}", CACHE_URL="locmem://"
    )

    completed = _deploy_check(env, tmp_path)

    assert "config.W001" in completed.stderr
    assert "is not shared between processes" in completed.stderr


def test_deploy_check_accepts_shared_cache(tmp_path):
    env = production_env(f"sqlite:///{tmp_path / 'portal.sqlite3'}")

    completed = _deploy_check(env, tmp_path)

    assert completed.returncode == 0, completed.stderr
    assert "config.W001" not in completed.stderr


def attempts_in_two_processes(env, tmp_path) -> tuple[list[bool], list[bool]]:
    """Make 3 attempts in one process, then 1 in another, with a limit of 3."""
    env = {
        **env,
        "PATIENT_ATTEMPT_LIMIT": "3",
        # Redis drops what a test leaves behind after this long.
        "PATIENT_ATTEMPT_WINDOW_SECONDS": "60",
        "TEST_SCOPE": f"test-{secrets.token_hex(6)}",
    }
    results = []
    for count in (3, 1):
        completed = run_python(
            ATTEMPTS_SCRIPT, {**env, "TEST_COUNT": str(count)}, tmp_path
        )
        assert completed.returncode == 0, completed.stderr
        results.append(json.loads(completed.stdout))
    return results[0], results[1]


def test_database_cache_on_sqlite_is_shared(tmp_path):
    env = production_env(f"sqlite:///{tmp_path / 'portal.sqlite3'}", CACHE_URL="db://")
    manage(env, tmp_path, "migrate", "--no-input", "-v0")

    first, second = attempts_in_two_processes(env, tmp_path)

    assert first == [True, True, True]
    assert second == [False]


def test_database_cache_on_postgres_is_shared(tmp_path, postgres_database):  # noqa: F811
    env = production_env(postgres_database, CACHE_URL="db://")
    manage(env, tmp_path, "migrate", "--no-input", "-v0")

    first, second = attempts_in_two_processes(env, tmp_path)

    assert first == [True, True, True]
    assert second == [False]


def test_redis_cache_is_shared(tmp_path):
    redis = pytest.importorskip("redis")
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except redis.exceptions.ConnectionError as error:
        skip_or_fail(f"No Redis server at {REDIS_URL}: {error}. Set TEST_REDIS_URL.")
    # No database is needed: the counter lives in Redis alone.
    env = production_env(
        f"sqlite:///{tmp_path / 'portal.sqlite3'}", CACHE_URL=REDIS_URL
    )

    first, second = attempts_in_two_processes(env, tmp_path)

    assert first == [True, True, True]
    assert second == [False]


def test_memory_cache_is_not_shared(tmp_path):
    # The same two processes with the per-process cache: each counts alone.
    env = production_env(
        f"sqlite:///{tmp_path / 'portal.sqlite3'}", CACHE_URL="locmem://"
    )

    first, second = attempts_in_two_processes(env, tmp_path)

    assert first == [True, True, True]
    assert second == [True]
