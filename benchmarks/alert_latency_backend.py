"""The demo's sample backend alone, as a process that ``alert_latency.py`` can kill.

Usage: ``python benchmarks/alert_latency_backend.py PORT``. It serves
:func:`soulwatch.demo.backend.create_backend` (with its SDK ``/metrics``)
under uvicorn on ``127.0.0.1:PORT`` until it is terminated.
"""

from __future__ import annotations

import sys

import uvicorn

#: Only ``/health`` talks to Redis, and the benchmark scrapes ``/metrics`` only:
#: no Redis is needed, so the URL points at a closed port.
_NO_REDIS = "redis://127.0.0.1:9/0"


def main(argv: list[str]) -> int:
    """Serve the backend on the port given as the only argument."""
    if len(argv) != 1 or not argv[0].isdigit():
        print("usage: alert_latency_backend.py PORT", file=sys.stderr)
        return 2
    from soulwatch.demo import backend, faults

    app = backend.create_backend(faults.Faults(), redis_url=_NO_REDIS)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(argv[0]),
        log_level="error",
        access_log=False,
        lifespan="off",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
