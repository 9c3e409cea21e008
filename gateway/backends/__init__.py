"""Backend plug-ins: one adapter per backend kind (``gateway.backends.base.BackendAdapter``).

A kind is its module here and one line in ``ADAPTERS`` (README, "Adding a backend kind")."""

from __future__ import annotations

from gateway.backends.anthropic import AnthropicAdapter
from gateway.backends.base import BackendAdapter, UpstreamCall
from gateway.backends.openai_chat import OpenAIChatAdapter
from gateway.backends.openai_responses import OpenAIResponsesAdapter
from gateway.snapshot import BackendInfo

# One instance per kind, keyed by ``Backend.kind`` (gateway.models.BackendKind: the admin and
# the config file accept only these values).
ADAPTERS: dict[str, BackendAdapter] = {adapter.kind: adapter for adapter in (
    OpenAIChatAdapter(),
    OpenAIResponsesAdapter(),
    AnthropicAdapter(),
)}


def adapter_for(backend: BackendInfo) -> BackendAdapter:
    return ADAPTERS[backend.kind]


def adapter_named(kind: str) -> BackendAdapter:
    return ADAPTERS[kind]


__all__ = ["ADAPTERS", "BackendAdapter", "UpstreamCall", "adapter_for", "adapter_named"]
