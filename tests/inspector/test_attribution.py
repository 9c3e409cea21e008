"""What the writer derives for every exchange (inspector/facts.py): who sent it (Claude Code's
session, agent and parent-agent headers, metadata.user_id, the user agent, the key tried), what
it was (method, path, the model its body named) and what came of it (the message id, cache
tokens, tool calls, the words search looks in); and what a rejected request stores."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from django.test import AsyncClient

from inspector.facts import exchange_facts
from tests.conftest import KEY, Upstream
from tests.gateway.helpers import chat_completion, user_request
from translation.session import session_from_user_id

pytestmark = pytest.mark.django_db(transaction=True)

SESSION = "7a2770fd-e542-4647-8c20-ffc53e5cdaca"


async def post(body: Any, path: str = "/v1/messages", **headers: str) -> Any:
    data = body if isinstance(body, str) else json.dumps(body)
    return await AsyncClient().post(path, data=data, content_type="application/json", headers=headers)


async def test_claude_code_attribution_headers_and_the_user_id_are_recorded(
    gateway_setup: str, upstream: Upstream, recorded: Any
) -> None:
    upstream.handler = lambda request: httpx.Response(200, json=chat_completion("the answer is zebra"))
    body = user_request(messages=[{"role": "user", "content": "which animal has stripes?"}],
                        metadata={"user_id": "user_abc_account__session_" + SESSION})
    response = await post(body, **{"x-api-key": KEY, "x-claude-code-session-id": "sess-header-1",
                                   "x-claude-code-agent-id": "agent-sub", "x-claude-code-parent-agent-id": "agent-main",
                                   "user-agent": "claude-cli/2.1.329 (external, sdk-cli)"})
    assert response.status_code == 200
    [x] = await recorded()
    # The header wins over the session the user id names.
    assert (x.session_id, x.agent_id, x.parent_agent_id) == ("sess-header-1", "agent-sub", "agent-main")
    assert x.user_id == "user_abc_account__session_" + SESSION
    assert x.client_agent.startswith("claude-cli/2.1.329")
    assert (x.method, x.path, x.endpoint, x.key_name) == ("POST", "/v1/messages", "messages", "tester")
    assert x.key_hint == "***" + KEY[-4:]  # a short key shows its last four only
    assert x.message_id == json.loads(response.content)["id"] and x.message_id.startswith("msg_")
    assert "stripes" in x.search_text and "zebra" in x.search_text
    assert x.has_tool_calls is False


async def test_without_the_header_the_session_comes_from_metadata_user_id(
    gateway_setup: str, upstream: Upstream, recorded: Any
) -> None:
    upstream.handler = lambda request: httpx.Response(200, json=chat_completion(
        "", tool_calls=[{"id": "c1", "type": "function", "function": {"name": "Bash", "arguments": "{}"}}],
        finish_reason="tool_calls"))
    user_id = json.dumps({"device_id": "d" * 64, "account_uuid": "", "session_id": SESSION})
    response = await post(user_request(metadata={"user_id": user_id},
                                       tools=[{"name": "Bash", "input_schema": {"type": "object"}}]),
                          **{"x-api-key": KEY})
    assert response.status_code == 200, response.content
    [x] = await recorded()
    assert (x.session_id, x.agent_id, x.user_id) == (SESSION, "", user_id)
    assert x.has_tool_calls is True and x.stop_reason == "tool_use"


async def test_a_rejected_request_keeps_the_model_the_key_tried_and_the_envelope_the_client_got(
    gateway_setup: str, recorded: Any
) -> None:
    wrong = "dgm_" + "w" * 40 + "Zq9x"
    response = await post(user_request(model="claude-opus-4-5"), **{"x-api-key": wrong})
    assert response.status_code == 401
    [x] = await recorded()
    assert (x.status, x.error_type, x.client_model) == (401, "authentication_error", "claude-opus-4-5")
    assert x.key_name == "" and x.key_hint == wrong[:12] + "…Zq9x"
    assert wrong not in json.dumps(x.client_request) and wrong[12:-4] not in x.key_hint
    assert x.client_response["status"] == 401
    assert x.client_response["body"] == json.loads(response.content)
    assert x.client_response["body"]["error"]["type"] == "authentication_error"


async def test_a_body_the_gateway_cannot_parse_is_stored_with_the_envelope_it_answered(
    gateway_setup: str, recorded: Any
) -> None:
    response = await post('{"model": "claude-x", "messages": [', **{"x-api-key": KEY})
    assert response.status_code == 400
    [x] = await recorded()
    assert x.client_response["body"] == json.loads(response.content)
    assert x.client_request["body_text"].startswith('{"model": "claude-x"')
    assert x.error_message and x.error_message in x.search_text


async def test_an_unknown_path_is_recorded_with_its_method_and_path(gateway_setup: str, recorded: Any) -> None:
    response = await AsyncClient().get("/v1/nope?x=1", headers={"x-api-key": KEY})
    assert response.status_code == 404
    [x] = await recorded()
    assert (x.method, x.path, x.status) == ("GET", "/v1/nope?x=1", 404)
    assert x.client_response["status"] == 404 and x.client_response["body"]["type"] == "error"


@pytest.mark.parametrize(("user_id", "session"), [
    ("user_0f1e_account_3b1a-77_session_" + SESSION, SESSION),
    (json.dumps({"device_id": "x", "session_id": SESSION}), SESSION),
    ("alice@example.com", ""),
    ("{not json", ""),
    ("", ""),
])
def test_the_session_a_user_id_names(user_id: str, session: str) -> None:
    assert session_from_user_id(user_id) == session


def test_facts_from_a_raw_body_and_a_stream_message() -> None:
    facts = exchange_facts(
        client_request={"method": "POST", "path": "/v1/messages?beta=true",
                        "headers": {"X-Claude-Code-Session-Id": "s1", "User-Agent": "claude-cli/2"},
                        "body_raw": json.dumps({"model": "m1", "messages": [
                            {"role": "user", "content": [{"type": "text", "text": "first"}]},
                            {"role": "assistant", "content": "ok"},
                            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
                                                          "content": "needle in the result"}]}]}).encode()},
        client_response={"events": [], "message": {"type": "message", "id": "msg_1", "content": [
            {"type": "text", "text": "reply words"}, {"type": "tool_use", "id": "t2", "name": "Read", "input": {}}]}},
        usage={"cache_read_input_tokens": 7, "cache_creation_input_tokens": 3}, error_message="", client_model="")
    assert facts["session_id"] == "s1" and facts["client_agent"] == "claude-cli/2"
    assert facts["client_model"] == "m1" and facts["message_id"] == "msg_1" and facts["has_tool_calls"]
    assert (facts["cache_read_tokens"], facts["cache_creation_tokens"]) == (7, 3)
    # The turn's own words: the last user message and the reply, not the history before it.
    assert "needle" in facts["search_text"] and "reply words" in facts["search_text"]
    assert "first" not in facts["search_text"]
