#!/usr/bin/env bash
# Creates what soulwatch needs on a fresh Debian machine with Python 3.11:
# the virtualenv in .venv with every Python package, and (when run as root)
# the Debian packages the test suite and the demo use as real components.
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

want_system=${SOULWATCH_SYSTEM_PACKAGES:-redis-server prometheus prometheus-alertmanager victoria-metrics chromium chromium-driver openssl nodejs}
missing=()
for pkg in $want_system; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
# npm (the Grafana schema check installs @grafana/schema with it) is a package of
# its own in Debian; NodeSource's nodejs already includes it.
if [[ " $want_system " == *" nodejs "* ]] && ! command -v npm >/dev/null; then
    dpkg -s npm >/dev/null 2>&1 || missing+=(npm)
fi
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "setup: installing Debian packages: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
        # Debian starts these as services; soulwatch's tests and demo start their own.
        for svc in redis-server prometheus prometheus-alertmanager victoria-metrics; do
            service "$svc" stop >/dev/null 2>&1 || true
        done
    else
        echo "setup: not root; skipping Debian packages ${missing[*]} (tests that need them will skip)"
    fi
fi

python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $($python --version)"
    "$python" -m venv .venv
fi
stamp=.venv/.soulwatch-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "setup: installing Python packages into .venv"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e ".[all,test]"
    touch "$stamp"
fi
