"""One Exchange per client request: what the client sent, what the backend got, what came
back, what the client saw, and why anything was changed."""

from __future__ import annotations

from django.db import models


class Exchange(models.Model):
    id = models.CharField(max_length=40, primary_key=True, help_text="The request-id header the client saw.")
    created_at = models.DateTimeField(db_index=True)
    endpoint = models.CharField(max_length=40, default="messages")
    key_name = models.CharField(max_length=100, blank=True)
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
    input_tokens = models.IntegerField(null=True, blank=True)
    output_tokens = models.IntegerField(null=True, blank=True)
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
    # Bodies and event logs (empty at capture level "metadata").
    client_request = models.JSONField(default=dict, blank=True)
    upstream_request = models.JSONField(default=dict, blank=True)
    notes = models.JSONField(default=list, blank=True)
    upstream_response = models.JSONField(default=dict, blank=True)
    client_response = models.JSONField(default=dict, blank=True)
    timings = models.JSONField(default=dict, blank=True)
    usage = models.JSONField(default=dict, blank=True)
    upstream_usage = models.JSONField(default=dict, blank=True, help_text="Usage as the backend reported it.")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.id
