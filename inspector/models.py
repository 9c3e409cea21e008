"""One Exchange per client request: what the client sent, what the backend got, what came
back, what the client saw, and why anything was changed."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from typing import Any

from django.db import models
from django.db.models import Q
from django.db.models.query import ModelIterable


class ExchangeQuerySet(models.QuerySet["Exchange"]):
    """Exchanges read whole: a queryset of full rows rebuilds their bodies from their pieces
    (``inspector.storage.exchanges_load``, one query for the lot) as it is evaluated. Rows read
    with ``only``/``defer`` that leave out ``bodies`` (the list pages) fetch no piece."""

    def _fetch_all(self) -> None:
        fresh = self._result_cache is None
        super()._fetch_all()
        if fresh and self._iterable_class is ModelIterable and self._result_cache:
            from inspector.storage import exchanges_load

            exchanges_load([e for e in self._result_cache if "bodies" not in e.get_deferred_fields()])

    def iterator(self, chunk_size: int | None = None) -> Iterator[Any]:
        """Rows a chunk at a time, each chunk's bodies rebuilt together (as ``_fetch_all`` does)."""
        rows = super().iterator(chunk_size)
        if self._iterable_class is not ModelIterable:
            yield from rows
            return
        from inspector.storage import exchanges_load

        while chunk := list(islice(rows, chunk_size or 2000)):
            exchanges_load([e for e in chunk if "bodies" not in e.get_deferred_fields()])
            yield from chunk


class Piece(models.Model):
    """A part of an exchange's bodies stored once, however many exchanges hold it (a system
    prompt, a tool list entry, a message of the history every turn re-sends, a stream log):
    keyed by the hash of its JSON bytes, zlib-compressed. No reference table: every write that
    uses a piece moves ``last_used`` forward, and retention deletes pieces last used before the
    oldest exchange it keeps (``inspector.retention``)."""

    hash = models.CharField(max_length=32, primary_key=True, help_text="blake2b-128 of the JSON bytes, hex.")
    data = models.BinaryField(help_text="The JSON bytes, zlib-compressed.")
    size = models.IntegerField(help_text="Bytes of JSON before compression.")
    stored = models.IntegerField(help_text="Bytes of data (what the piece costs the database).")
    last_used = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return self.hash


# An exchange that failed as its client saw it: an error status, a stream that ended with an
# error event, or a client that left. The list's error filter, usage and sessions count by it.
FAILED = Q(status__gte=400) | ~Q(error_type="") | Q(disconnected=True)


class Exchange(models.Model):
    id = models.CharField(max_length=40, primary_key=True, help_text="The request-id header the client saw.")
    created_at = models.DateTimeField(db_index=True)
    endpoint = models.CharField(max_length=40, default="messages", db_index=True)
    method = models.CharField(max_length=10, blank=True)
    path = models.CharField(max_length=300, blank=True, help_text="The request's path, as the client sent it.")
    key_name = models.CharField(max_length=100, blank=True, db_index=True)
    key_hint = models.CharField(max_length=40, blank=True,
                                help_text="The key the client presented, masked (its first characters and last four).")
    # Attribution: Claude Code's headers (x-claude-code-session-id, -agent-id, -parent-agent-id),
    # the body's metadata.user_id, and the client's user agent.
    session_id = models.CharField(max_length=100, blank=True)
    agent_id = models.CharField(max_length=100, blank=True)
    parent_agent_id = models.CharField(max_length=100, blank=True)
    user_id = models.CharField(max_length=300, blank=True)
    client_agent = models.CharField(max_length=200, blank=True, help_text="The client's user-agent header.")
    message_id = models.CharField(max_length=100, blank=True, db_index=True,
                                  help_text="The id of the message the client received (msg_…).")
    client_model = models.CharField(max_length=200, blank=True, db_index=True)
    backend_name = models.CharField(max_length=100, blank=True, db_index=True)
    route = models.CharField(max_length=200, blank=True, help_text="The route pattern that matched the model.")
    upstream_model = models.CharField(max_length=200, blank=True)
    preset = models.CharField(max_length=32, blank=True)
    stream = models.BooleanField(default=False)
    status = models.IntegerField(default=0, db_index=True)
    stop_reason = models.CharField(max_length=40, blank=True)
    error_type = models.CharField(max_length=40, blank=True)
    error_message = models.TextField(blank=True)
    disconnected = models.BooleanField(default=False)
    # Every upstream attempt, in order, as the recorder keeps them (``ExchangeRecord.attempts``,
    # the first ``ATTEMPTS_MAX``, errors capped and redacted); empty on rows written before.
    attempts = models.JSONField(default=list, blank=True)
    failed_over = models.BooleanField(default=False, db_index=True,
                                      help_text="More than one upstream attempt: the answer came from a later one.")
    trace_id = models.CharField(max_length=32, blank=True,
                                help_text="The OpenTelemetry trace of the exchange (empty when tracing is off).")
    input_tokens = models.IntegerField(null=True, blank=True)
    output_tokens = models.IntegerField(null=True, blank=True)
    cache_read_tokens = models.IntegerField(null=True, blank=True)
    cache_creation_tokens = models.IntegerField(null=True, blank=True)
    has_tool_calls = models.BooleanField(default=False)
    rewrite_count = models.IntegerField(default=0)
    capture = models.CharField(max_length=10, default="full", help_text="Capture level: full or metadata.")
    # The stream validator's verdict on the events the client received (null: not a stream).
    valid = models.BooleanField(null=True, blank=True)
    validation_error = models.TextField(blank=True)
    # Milliseconds from the moment the request was received.
    upstream_first_byte_ms = models.FloatField(null=True, blank=True)
    first_event_ms = models.FloatField(null=True, blank=True)
    duration_ms = models.FloatField(null=True, blank=True)
    # Time to the first token the client received, and the part of it the gateway added.
    ttft_ms = models.FloatField(null=True, blank=True)
    overhead_ms = models.FloatField(null=True, blank=True)
    # Bodies and event logs (empty at capture level "metadata"). Rows written since pieces
    # exist keep them in ``bodies`` (with ``Piece``) and these four are filled in on reading.
    client_request = models.JSONField(default=dict, blank=True)
    upstream_request = models.JSONField(default=dict, blank=True)
    notes = models.JSONField(default=list, blank=True)
    upstream_response = models.JSONField(default=dict, blank=True)
    client_response = models.JSONField(default=dict, blank=True)
    timings = models.JSONField(default=dict, blank=True)
    usage = models.JSONField(default=dict, blank=True)
    upstream_usage = models.JSONField(default=dict, blank=True, help_text="Usage as the backend reported it.")
    # What search looks in besides the columns: the turn's own words (its last user message, the
    # reply's text, the error), not the history every later turn repeats; and, when it failed
    # over, the backends it tried (``backend_name`` holds only the last).
    search_text = models.TextField(blank=True)
    # How the four body columns are stored (inspector.storage): their skeleton and the pieces cut
    # out of it, zlib-compressed; null for rows written before pieces (their columns hold all).
    bodies = models.BinaryField(null=True, blank=True, editable=False)
    stored_bytes = models.IntegerField(default=0, editable=False,
                                       help_text="What the row costs besides its pieces (retention by size).")

    objects: Any = ExchangeQuerySet.as_manager()

    class Meta:
        base_manager_name = "objects"
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["session_id", "created_at"], name="exchange_session_time")]

    @property
    def failed(self) -> bool:
        """``FAILED`` for one row."""
        return self.status >= 400 or bool(self.error_type) or self.disconnected

    def __str__(self) -> str:
        return self.id
