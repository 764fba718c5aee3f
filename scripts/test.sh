#!/usr/bin/env bash
# The README's test command: installs what is missing, then lint (ruff),
# types (mypy, configured in pyproject.toml) and the suite; any failure fails it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check src tests bench
.venv/bin/mypy
exec .venv/bin/python -m pytest -q "$@"
