"""Secrets never reach the inspector in clear, whatever header an operator puts them in."""

from __future__ import annotations

from translation.masking import headers_mask


def test_credentials_are_masked_to_their_last_four_characters() -> None:
    masked = headers_mask({
        "x-api-key": "sk-ant-api03-abcdefgh1234", "Authorization": "Bearer sk-live-zzzzwxyz",
        "X-Upstream-Token": "tok_secretvalue9876", "cookie": "session=abcdefghi", "api-key": "short",
        "content-type": "application/json", "anthropic-beta": "interleaved-thinking-2025-05-14",
    })
    assert masked == {
        "x-api-key": "***1234", "Authorization": "***wxyz", "X-Upstream-Token": "***9876",
        "cookie": "***fghi", "api-key": "***",
        "content-type": "application/json", "anthropic-beta": "interleaved-thinking-2025-05-14",
    }


def test_django_request_headers_are_masked_the_same_way() -> None:
    from django.http.request import HttpHeaders

    headers = HttpHeaders({"HTTP_X_API_KEY": "sk-ant-api03-abcdefgh1234", "CONTENT_TYPE": "application/json"})
    assert headers_mask(headers) == {"X-Api-Key": "***1234", "Content-Type": "application/json"}
