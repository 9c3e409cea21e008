"""Dragoman's protocol core: pure Python, no Django (a test enforces it)."""

from translation.capabilities import PRESETS, Capabilities, capabilities_build
from translation.errors import ApiError
from translation.notes import RewriteNote
from translation.schemas import MessagesRequest, messages_request_parse

__all__ = [
    "PRESETS",
    "ApiError",
    "Capabilities",
    "MessagesRequest",
    "RewriteNote",
    "capabilities_build",
    "messages_request_parse",
]
