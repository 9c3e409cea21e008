"""Rewrite rules every backend kind applies the same way, so their wording and notes agree."""

from __future__ import annotations

from typing import Any, Literal

from translation.capabilities import Capabilities
from translation.errors import ApiError
from translation.notes import RewriteNote
from translation.prefill import BILLING_HEADER_PREFIX
from translation.schemas import (
    Base64Source,
    ImageBlock,
    Message,
    MessagesRequest,
    SearchResultBlock,
    TextBlock,
    UrlSource,
)

# Top-level request fields the OpenAI-style translators map; anything else (context_management,
# cache_control, container, service_tier, ...) is not forwarded, with a note.
MAPPED_FIELDS = frozenset({
    "model", "max_tokens", "messages", "system", "metadata", "stop_sequences", "stream",
    "temperature", "top_p", "top_k", "tools", "tool_choice", "thinking", "output_config",
})

IMAGE_PLACEHOLDER = "[image omitted: this model does not accept images]"

# Anthropic effort -> the effort values OpenAI-style backends accept (most top out at "high").
EFFORT_TO_OPENAI = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}


def parallel_tools_disabled(req: MessagesRequest) -> bool:
    """The client asked for at most one tool call (``tool_choice.disable_parallel_tool_use``).

    Sent on as ``parallel_tool_calls: false`` where the backend takes it, but servers ignore it
    (llama.cpp's template and parser decide: five tool_use blocks were seen against llama-server),
    so the translators keep only the first tool call and note the rest.
    """
    choice = req.tool_choice
    return bool(req.tools) and choice is not None and bool(choice.disable_parallel_tool_use)


PARALLEL_DROP_DETAIL = ("Dropped a tool call: the client disabled parallel tool use "
                        "(tool_choice.disable_parallel_tool_use), so a reply holds at most one.")


def fields_unmapped(req: MessagesRequest) -> list[str]:
    """The top-level fields the client sent that no OpenAI-style translator maps."""
    return sorted(k for k in req.model_fields_set | set(req.model_extra or {}) if k not in MAPPED_FIELDS)


def system_texts(req: MessagesRequest, caps: Capabilities, notes: list[RewriteNote]) -> list[str]:
    """The non-empty system texts, without Claude Code's billing block where ``caps`` strips it."""
    system = req.system
    if system is None:
        return []
    if isinstance(system, str):
        return [system] if system else []
    texts = []
    for i, block in enumerate(system):
        if i == 0 and caps.strip_billing_header and block.text.startswith(BILLING_HEADER_PREFIX):
            notes.append(RewriteNote("system.strip_billing_header", "system[0]",
                                     "Removed Claude Code's per-request x-anthropic-billing-header block "
                                     "(it changes every request and defeats prefix caching)."))
            continue
        if block.text:
            texts.append(block.text)
    return texts


def system_message_rejected(i: int) -> ApiError:
    """Claude Code retries without mid-conversation system messages on exactly this wording."""
    return ApiError(400, f"messages.{i}: Unexpected role \"system\". This backend does not accept "
                         "system messages inside messages (capability system_messages=reject); "
                         "the input message role must be 'user' or 'assistant'.")


def system_message_keep(i: int, caps: Capabilities, notes: list[RewriteNote], *, hoisted_into: str) -> bool:
    """The ``system_messages`` policy for ``messages[i]`` (a ``role: system`` message), for every kind.

    True: the message stays where it is (``keep``). False: the caller moves its text into the
    system prompt (``hoist``, noted here, naming ``hoisted_into``). ``reject`` is a 400.
    """
    policy = caps.system_messages
    if policy == "reject":
        raise system_message_rejected(i)
    if policy == "keep":
        return True
    notes.append(RewriteNote("system_messages.hoist", f"messages[{i}]",
                             f"Moved a mid-conversation system message into {hoisted_into}."))
    return False


def system_message_text(message: Message) -> str:
    """The text of a ``role: system`` message: its non-empty text blocks, a blank line apart."""
    return "\n\n".join(b.text for b in message.blocks() if isinstance(b, TextBlock) and b.text)


def image_url(block: ImageBlock) -> str | None:
    """A data URI or URL for the image; None for a Files API id."""
    source = block.source
    if isinstance(source, Base64Source):
        return f"data:{source.media_type};base64,{source.data}"
    if isinstance(source, UrlSource):
        return source.url
    return None


def image_policy(path: str, block: ImageBlock, caps: Capabilities, notes: list[RewriteNote], *,
                 backend: str) -> tuple[Literal["url", "text"], str] | None:
    """What an image becomes under ``caps.images``, for every OpenAI-style kind.

    ``("url", data URI or URL)`` to send as the kind's image part; ``("text", placeholder)`` for
    a text-only model (``placeholder``); None when it is dropped (a Files API id no OpenAI-style
    backend can read). ``reject`` is a 400 naming the backend.
    """
    if caps.images == "reject":
        raise ApiError(400, f"{path}: {backend} does not accept images (capability images=reject)")
    if caps.images == "placeholder":
        notes.append(RewriteNote("image.placeholder", path, "Replaced an image by a text placeholder: the backend "
                                                            "takes text only (capability images=placeholder)."))
        return "text", IMAGE_PLACEHOLDER
    url = image_url(block)
    if url is None:
        notes.append(RewriteNote("image.drop_file", path, "Dropped an image given as an Anthropic Files API id "
                                                          "(the backend cannot read it)."))
        return None
    return "url", url


def search_result_text(block: SearchResultBlock) -> str:
    head = "\n".join(x for x in (block.title, block.source) if x)
    body = "\n".join(b.text for b in block.content)
    return f"{head}\n\n{body}" if head else body


_TOOL_CHOICES_ALLOWED = {
    "full": ("auto", "any", "tool", "none"),
    "no_required": ("auto", "tool", "none"),
    "auto_only": ("auto",),
    "omit": (),
}


def tool_choice_apply(kind: str, mapped: Any, body: dict[str, Any], caps: Capabilities,
                      notes: list[RewriteNote]) -> None:
    """Send ``mapped`` (the backend's form of tool_choice ``kind``) only as ``caps.tool_choice`` allows."""
    support = caps.tool_choice
    if kind in _TOOL_CHOICES_ALLOWED[support]:
        body["tool_choice"] = mapped
    elif kind == "none":
        # The backend cannot be told not to call tools: send none, so it cannot.
        del body["tools"]
        notes.append(RewriteNote("tool_choice.none_without_tools", "tool_choice",
                                 f"tool_choice none is not accepted (capability tool_choice={support}); "
                                 "sent no tools instead."))
    elif kind == "any" and support == "no_required":
        body["tool_choice"] = "auto"
        notes.append(RewriteNote("tool_choice.any_to_auto", "tool_choice",
                                 "tool_choice any sent as auto: the backend rejects required "
                                 "(capability tool_choice=no_required)."))
    else:
        notes.append(RewriteNote("tool_choice.drop", "tool_choice",
                                 f"tool_choice {kind} not sent (capability tool_choice={support}); "
                                 "the backend decides."))
