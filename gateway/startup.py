from __future__ import annotations

import logging

from django.conf import settings

log = logging.getLogger(__name__)


def startup() -> None:
    """Apply ``DRAGOMAN_CONFIG`` (if set) before serving; a bad file stops the start."""
    if not settings.DRAGOMAN_CONFIG:
        return
    from gateway.config import config_apply, config_load

    for line in config_apply(config_load(settings.DRAGOMAN_CONFIG)):
        log.info("config: %s", line)
