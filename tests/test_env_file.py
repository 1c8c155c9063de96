"""Loading a .env file into the environment, as manage.py and wsgi.py do."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config import dotenv


def test_parse_reads_names_values_and_comments():
    text = (
        "# a comment\n"
        "\n"
        "SECRET_KEY=abc#def\n"
        "export DEBUG=false\n"
        "PRACTICE_NAME='Riverside Family Practice'\n"
        'EMAIL_URL="smtp://user:p%40ss@127.0.0.1:1025" # the relay\n'
        "LOG_LEVEL=INFO # quiet\n"
        "EMPTY=\n"
    )

    values = dotenv.parse(text)

    assert values == {
        "SECRET_KEY": "abc#def",
        "DEBUG": "false",
        "PRACTICE_NAME": "Riverside Family Practice",
        "EMAIL_URL": "smtp://user:p%40ss@127.0.0.1:1025",
        "LOG_LEVEL": "INFO",
        "EMPTY": "",
    }


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("JUST A SENTENCE", "expected NAME=value"),
        ("1ST=value", "expected NAME=value"),
        ("SECRET_KEY='unclosed", "is not closed"),
        ('SECRET_KEY="a" b', "is not closed"),
    ],
)
def test_parse_names_malformed_line(line, problem):
    with pytest.raises(ImproperlyConfigured) as raised:
        dotenv.parse(f"DEBUG=true\n{line}\n", "/srv/portal/.env")

    assert "/srv/portal/.env, line 2" in str(raised.value)
    assert problem in str(raised.value)
    assert "unclosed" not in str(raised.value)


def test_load_keeps_environment_values(tmp_path, monkeypatch):
    env_file = tmp_path / ".env"
    env_file.write_text("PORTAL_TEST_A=from-file\nPORTAL_TEST_B=from-file\n")
    monkeypatch.setenv("PORTAL_TEST_A", "from-environment")
    monkeypatch.delenv("PORTAL_TEST_B", raising=False)

    dotenv.load(env_file)

    assert os.environ["PORTAL_TEST_A"] == "from-environment"
    assert os.environ["PORTAL_TEST_B"] == "from-file"
    monkeypatch.delenv("PORTAL_TEST_B")


def test_load_ignores_a_missing_file(tmp_path):
    dotenv.load(tmp_path / "nothing.env")


def test_manage_py_reports_bad_env_file(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    root = Path(__file__).resolve().parent.parent
    (project / "manage.py").write_text((root / "manage.py").read_text())
    (project / ".env").write_text("SECRET_KEY=ok\nthis is not a setting\n")

    completed = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=project,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert completed.returncode == 1
    assert "line 2: expected NAME=value" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_env_example_lists_every_variable():
    root = Path(__file__).resolve().parent.parent
    example = dotenv.parse((root / ".env.example").read_text(), ".env.example")
    read_by_settings = set()
    for module in (root / "config" / "settings").glob("*.py"):
        read_by_settings |= set(
            re.findall(r'env_(?:str|int|bool|list)\(\s*"([A-Z_]+)"', module.read_text())
        )

    assert "SECRET_KEY" in read_by_settings
    assert sorted(read_by_settings - set(example)) == []
