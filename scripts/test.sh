#!/usr/bin/env bash
# Sets everything up, checks style and runs the whole test suite (unit, end-to-end on Ray, real data).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check pipeline stages tests bench
.venv/bin/python -m pytest -q "$@"
