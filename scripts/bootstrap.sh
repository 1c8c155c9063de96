#!/usr/bin/env bash
# Create or update .venv from uv.lock with a local Python 3.12 or newer.
# Never downloads an interpreter: it stops and says what to install instead.
set -euo pipefail
cd "$(dirname "$0")/.."

required="3.12"
python=""
for candidate in python3.13 python3.12 python3; do
  if command -v "$candidate" >/dev/null 2>&1 &&
     "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
    python=$(command -v "$candidate")
    break
  fi
done
if [ -z "$python" ]; then
  echo "error: Python $required or newer is required and none was found on PATH." >&2
  echo "Install Python $required (for example 'pyenv install $required') and run this again." >&2
  exit 1
fi

uv=""
if command -v uv >/dev/null 2>&1 && uv --version >/dev/null 2>&1; then
  uv=$(command -v uv)
elif [ -x .tools/bin/uv ]; then
  uv=.tools/bin/uv
else
  echo "uv not found; installing it into .tools/ with $python"
  "$python" -m venv .tools
  .tools/bin/pip install --quiet "uv==0.13.9"
  uv=.tools/bin/uv
fi

export UV_PYTHON_DOWNLOADS=never
"$uv" sync --frozen --python "$python"
