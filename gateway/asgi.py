"""ASGI entry point: ``daphne gateway.asgi:application``."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway.settings")

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application

django_application = get_asgi_application()

from gateway.startup import startup  # noqa: E402

startup()

# The admin's CSS and JS are served by the gateway itself: one process, nothing else to deploy.
application = ASGIStaticFilesHandler(django_application)
