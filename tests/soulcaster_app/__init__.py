"""A stand-in for Soulcaster's backend (naga-k/soulcaster, ``backend/``) as the tests need it.

Its shape follows the real code: ``store.py`` picks its store from
``REDIS_URL``/``UPSTASH_REDIS_URL`` (redis-py), else
``UPSTASH_REDIS_REST_URL``/``_TOKEN`` (Upstash REST), else memory, once at
import; it writes the keys the real store writes (``job:{id}``,
``cluster:jobs:{cluster_id}``, ``cluster_job:{project}:{id}``,
``cluster_jobs:{project}:recent``, ``feedback:{project}:{id}``,
``feedback:created:{project}``, ``feedback:source:{project}:{source}``).
``main.py`` has the real ``/health`` (503 when the store's ping raises), the
real ``exception_handler(Exception)`` that logs and re-raises, and the
adoption lines of docs/soulcaster.md.
"""
