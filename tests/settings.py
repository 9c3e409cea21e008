"""Settings for the test suite: production settings with a throwaway secret and test hosts.

DEBUG stays off so tests see what production sends (no debug pages, no tracebacks).
"""

import os

os.environ.setdefault("DRAGOMAN_SECRET_KEY", "test-only-secret-key-not-for-production")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")
os.environ.setdefault("DRAGOMAN_INSPECTOR_FLUSH_SECONDS", "0.05")
# /metrics and /healthz?verbose=1 (tests/operator.py); the gateways the tests start inherit it.
os.environ.setdefault("DRAGOMAN_METRICS_TOKEN", "test-metrics-token")

from gateway.settings import *  # noqa: F403

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file, not Django's shared-cache in-memory test DB: the inspector writes from its own
    # thread, and shared-cache SQLite answers "database table is locked" to concurrent writers.
    import tempfile

    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": os.path.join(tempfile.gettempdir(), f"dragoman-test-{os.getpid()}.sqlite3")
    }

# The test process shares no backend health (its tests call HealthSync.sync_once themselves): a
# sharing thread would query the database while tests without database access run. The gateways
# the end-to-end tests start (daphne, gateway.settings) share it as in production.
HEALTH_SYNC_SECONDS = 0.0
