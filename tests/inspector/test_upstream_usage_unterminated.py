"""The inspector folds a stream's usage from its stored chunks as the relay does: a last event
the backend sent without its blank line counts (translation.sse flush), and an over-long line
ends the folding without failing the page."""

from __future__ import annotations

from inspector.models import Exchange
from inspector.views import upstream_usage


def stored(*pieces: str) -> Exchange:
    return Exchange(upstream_response={"status": 200, "chunks": [[i, piece] for i, piece in enumerate(pieces)]})


def test_usage_in_an_unterminated_last_event_is_read() -> None:
    exchange = stored('data: {"choices": [{"index": 0, "delta": {"content": "Hi"}}]}\n\n',
                      'data: {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2}}')
    usage = upstream_usage(exchange)
    assert usage is not None and usage.get("prompt_tokens") == 7, usage


def test_a_line_over_the_decoders_limit_keeps_what_came_before() -> None:
    from translation.sse import LINE_MAX_BYTES

    exchange = stored('data: {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2}}\n\n',
                      "data: " + "x" * (LINE_MAX_BYTES + 10))
    usage = upstream_usage(exchange)
    assert usage is not None and usage.get("prompt_tokens") == 7, usage
