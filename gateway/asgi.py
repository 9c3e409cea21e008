"""ASGI entry point: ``daphne gateway.asgi:application``."""

from __future__ import annotations

import atexit
import gc
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway.settings")

import django
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

django.setup(set_prefix=False)  # what get_asgi_application() does, with our handler below

from gateway.asgi_handler import GatewayASGIHandler  # noqa: E402

django_application = GatewayASGIHandler()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import path  # noqa: E402

from gateway.runtime import runtime_get  # noqa: E402
from gateway.startup import startup  # noqa: E402
from inspector.consumers import LiveTailConsumer  # noqa: E402

startup()
# The config watcher and the inspector's writer. daphne (4.x) sends no ASGI lifespan events, so
# the stop runs at interpreter exit: after SIGTERM or SIGINT Twisted's reactor stops, the
# process exits normally and atexit handlers run (the writer first writes what it holds).
runtime = runtime_get()
runtime.start()
atexit.register(runtime.stop)

# What start-up built (Django, the apps, the SDK modules: about 140,000 objects) lives as long as
# the process: out of the collector's sight, each collection of the oldest generation scans only
# what requests made since (it paused the loop for 100-170 ms about once a second under load).
gc.collect()
gc.freeze()

# The admin's CSS and JS are served by the gateway itself: one process, nothing else to deploy.
# WebSockets carry the inspector's live tail only: the admin session authenticates them, and the
# Origin check keeps other sites from opening one with a staff member's cookies.
application = ProtocolTypeRouter({
    "http": ASGIStaticFilesHandler(django_application),
    "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter([
        path("admin/inspector/exchange/live/ws", LiveTailConsumer.as_asgi()),
    ]))),
})
