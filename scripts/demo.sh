#!/usr/bin/env bash
# The main job: sets everything up, then runs soulwatch's demo with any extra arguments.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/soulwatch demo "$@"
