#!/usr/bin/env bash
# The whole test suite: sets everything up, then runs pytest with any extra arguments.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
