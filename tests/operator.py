"""What an operator's scraper sends to ``/metrics`` and ``/healthz?verbose=1``: the bearer token
of ``DRAGOMAN_METRICS_TOKEN``, which tests/settings.py sets for the suite and the gateways it starts."""

from __future__ import annotations

import os


def operator_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {os.environ['DRAGOMAN_METRICS_TOKEN']}"}
