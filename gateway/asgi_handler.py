"""Django's ASGI handler, minus the thread hops of an API request.

Per request, Django's ``ASGIHandler`` (django/core/handlers/asgi.py, 5.x) opens an
``asgiref.sync.ThreadSensitiveContext`` (a new executor thread, joined at the end), sends
``request_started`` with ``asend`` (its sync receivers run in that thread) and closes the
response with ``sync_to_async(response.close)`` (another hop). Each hop hands the GIL to
another thread and back, which under load costs both CPU and latency.

The /v1 API runs no sync code of its own (async views, no sync middleware:
``gateway.middleware``), so ``api_handle`` is Django's ``handle`` with those calls made inline
on the event loop: the receivers (``reset_queries``, ``close_old_connections``,
``close_caches``) look only at connections opened by this thread's context, and async code
opens none. The admin keeps Django's handler unchanged. Measured at 100 concurrent streams
(docs/performance.md): about 1.3 ms less CPU per request and 1.7x the requests/s.

A /v1 body is read no further than admission reads it (``gateway.pipeline.admission.body_wanted``),
here and in daphne itself (``BoundedWebRequest``), so a body over the limit gets its 413 without
being received whole.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterable
from typing import Any

from daphne import http_protocol
from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.urls import set_script_prefix

from gateway.pipeline.admission import body_limit, body_wanted

# A Content-Length over the limit: its head is waited for this long at most, then the client
# (which may have declared more than it sends) is answered with what came.
HEAD_WAIT_SECONDS = 1.0


def content_length(headers: Iterable[tuple[bytes, bytes]]) -> int:
    """The declared body length of ASGI headers (0 when there is none, or none that is a number)."""
    for name, value in headers:
        if name == b"content-length":
            return int(value) if value.isdigit() else 0
    return 0


class BoundedWebRequest(http_protocol.WebRequest):
    """daphne's request, which reads a /v1 body no further than admission will (``body_wanted``).

    daphne (4.x, on Twisted's ``HTTPChannel``) starts the application only once the whole body is
    in, spooled to a temporary file: a 1 GB upload would be received whole before its 413. Here
    the body ends early instead, as if it were complete: one whose Content-Length is over the
    limit after its head (or what of it came within HEAD_WAIT_SECONDS), one without a length
    (chunked) when it is one byte past the limit. The application then answers 413 and records the
    head, as for any body over the limit. The rest of the upload is not read (while it handles a
    request, Twisted buffers at most 16 KiB more, then stops reading the socket) and the connection
    closes after the answer. The channel internals used (``_path``, ``_transferDecoder``,
    ``allContentReceived``) were read in Twisted 26.10 (twisted/web/http.py) under daphne 4.2.
    """

    _wanted: int | None = None  # the bytes still taken; None: the whole body (daphne's way)
    _receiving = False
    _cut = False
    _timer: Any = None

    def gotLength(self, length: int | None) -> None:
        super().gotLength(length)
        if not self.channel._path.startswith(b"/v1/"):
            return
        wanted = body_wanted(length or 0)
        if length is not None and length < wanted:  # within the limit: read whole
            return
        self._wanted, self._receiving = max(wanted, 1), True
        if length is not None:
            self._timer = self.channel.callLater(HEAD_WAIT_SECONDS, self._body_end)

    def handleContentChunk(self, data: bytes) -> None:
        if self._wanted is None:
            super().handleContentChunk(data)
            return
        if self._cut:
            return
        taken = data[:self._wanted]
        super().handleContentChunk(taken)
        self._wanted -= len(taken)
        if not self._wanted:
            self._body_end()

    def _body_end(self) -> None:
        """The body ends here for the channel: the application starts, nothing more is read."""
        if self._cut or not self._receiving or self.channel is None:
            return
        self._cut = True
        channel = self.channel
        channel.persistent = False  # the rest of the upload must not be parsed as a next request
        if channel._transferDecoder is not None:  # it may still be parsing this chunk: its end is not one
            channel._transferDecoder.finishCallback = lambda rest: None
        channel.allContentReceived()

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        self._receiving = False
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        super().requestReceived(command, path, version)

    def connectionLost(self, reason: Any) -> None:
        self._receiving = False
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        super().connectionLost(reason)

    def handle_reply(self, message: dict[str, Any]) -> None:
        super().handle_reply(message)
        if self._cut and message.get("type") == "http.response.start":
            self.responseHeaders.setRawHeaders(b"connection", [b"close"])


def daphne_body_bounded() -> None:
    """daphne makes each connection's requests of ``daphne.http_protocol.WebRequest`` (read when
    ``HTTPFactory.buildProtocol`` runs): make them ``BoundedWebRequest``s."""
    http_protocol.WebRequest = BoundedWebRequest


class GatewayASGIHandler(ASGIHandler):
    def __init__(self) -> None:
        super().__init__()
        daphne_body_bounded()  # the handler is made once, in the server's process (gateway.asgi)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1/"):
            await self.api_handle(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    async def api_handle(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """``ASGIHandler.handle`` with its signal and ``response.close`` calls made inline."""
        try:
            body_file = await self.body_receive(scope, receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            assert error_response is not None
            body_file.close()
            await self.send_response(error_response, send)
            error_response.close()
            return

        async def process_request() -> Any:
            response = await self.run_get_response(request)
            try:
                await self.send_response(response, send)
            except asyncio.CancelledError:
                pass  # the client disconnected during send_response
            return response

        # As Django does: the view is cancelled when the client disconnects first.
        tasks = [asyncio.create_task(self.listen_for_disconnect(receive)), asyncio.create_task(process_request())]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        # Outcomes are read, never re-raised here (unless they must propagate): an exception raised
        # in this frame holds the frame in its traceback, the frame holds ``tasks`` and a task its
        # exception, a cycle that kept every request's objects until the oldest garbage collection.
        pending = [task for task in tasks if not task.done()]
        for task in tasks:
            if task.done() and not task.cancelled():
                error = task.exception()
                if isinstance(error, AssertionError):
                    body_file.close()
                    raise error
                if error is not None and not isinstance(error, RequestAborted):
                    raise error
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
        if tasks[1].cancelled():
            signals.request_finished.send(sender=self.__class__)
        else:
            tasks[1].result().close()
        body_file.close()

    async def body_receive(self, scope: dict[str, Any], receive: Any) -> Any:
        """Django's ``read_body``, taking no more than admission reads (``body_wanted``): the head
        of a body whose Content-Length is over the limit (waited for HEAD_WAIT_SECONDS at most),
        one byte past the limit of any other. The rest of the upload is left unread."""
        declared = content_length(scope["headers"])
        wanted = body_wanted(declared)
        body_file = tempfile.SpooledTemporaryFile(max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE, mode="w+b")
        received, more = 0, True
        try:
            async with asyncio.timeout(HEAD_WAIT_SECONDS if declared > body_limit() else None):
                while more and received < wanted:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        raise RequestAborted()
                    body = message.get("body", b"")[:wanted - received]
                    body_file.write(body)
                    received += len(body)
                    more = message.get("more_body", False)
        except TimeoutError:
            pass
        except RequestAborted:
            body_file.close()
            raise
        body_file.seek(0)
        return body_file

    async def listen_for_disconnect(self, receive: Any) -> None:
        """Django's, except after a body left unread (one over the limit, answered 413 at once):
        then it waits to be cancelled with the answer sent, rather than read the rest."""
        if (await receive())["type"] == "http.disconnect":
            raise RequestAborted()
        await asyncio.get_running_loop().create_future()
