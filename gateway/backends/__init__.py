"""Backend plug-ins: one small adapter per backend kind."""

from __future__ import annotations

from gateway.backends.anthropic import AnthropicAdapter
from gateway.backends.base import BackendAdapter, UpstreamCall
from gateway.backends.openai_chat import OpenAIChatAdapter
from gateway.backends.openai_responses import OpenAIResponsesAdapter
from gateway.snapshot import BackendInfo
from translation.errors import ApiError

ADAPTERS: dict[str, BackendAdapter] = {
    OpenAIChatAdapter.kind: OpenAIChatAdapter(),
    AnthropicAdapter.kind: AnthropicAdapter(),
    OpenAIResponsesAdapter.kind: OpenAIResponsesAdapter(),
}


def adapter_for(backend: BackendInfo) -> BackendAdapter:
    adapter = ADAPTERS.get(backend.kind)
    if adapter is None:
        raise ApiError(500, f"backend {backend.name} has kind {backend.kind!r}, which this gateway "
                            "version cannot translate to yet", source="backend")
    return adapter


__all__ = ["BackendAdapter", "UpstreamCall", "adapter_for"]
