"""Passthrough to native Anthropic Messages backends, with the rewrites of README, Native Anthropic backends"""

from translation.anthropic.request import (
    ANTHROPIC_VERSION,
    beta_fields_drop,
    build_request,
    headers_build,
    tool_ids_map,
)
from translation.anthropic.response import translate_response
from translation.anthropic.stream import AnthropicStreamRelay

__all__ = ["ANTHROPIC_VERSION", "AnthropicStreamRelay", "beta_fields_drop", "build_request", "headers_build",
           "tool_ids_map", "translate_response"]
