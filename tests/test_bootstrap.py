"""The setup script finds a local Python 3.12 or newer, or stops with an error."""

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "bootstrap.sh"


def _older_python() -> str | None:
    """Return the path of an interpreter older than 3.12, if one is installed."""
    for candidate in ("/usr/bin/python3", "/root/.pyenv/versions/3.11.7/bin/python3"):
        path = Path(candidate)
        if not path.exists():
            continue
        version = subprocess.run(
            [candidate, "-c", "import sys; print(sys.version_info >= (3, 12))"],
            capture_output=True,
            text=True,
        )
        if version.stdout.strip() == "False":
            return candidate
    return None


def test_bootstrap_stops_without_python_312(tmp_path):
    older = _older_python()
    if older is None:
        pytest.skip("no Python older than 3.12 is installed to stand in")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(older)
    (bin_dir / "dirname").symlink_to("/usr/bin/dirname")

    result = subprocess.run(
        ["/bin/bash", str(SCRIPT)],
        env={"PATH": str(bin_dir), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 1
    assert "Python 3.12 or newer is required" in result.stderr
    assert "uv" not in result.stdout


def test_python_version_file_names_312():
    version_file = SCRIPT.parent.parent / ".python-version"

    assert version_file.read_text().strip() == "3.12"
    assert sys.version_info >= (3, 12)
