"""What the two OpenAI kinds share (Chat Completions and Responses): a bearer key, the
translation module's three entry points, and the tokenize endpoints of the servers that speak
them (vLLM, SGLang, llama.cpp), at the server root beside ``/v1``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from gateway.backends.base import BackendAdapter, UpstreamCall
from gateway.snapshot import RouteInfo
from translation.capabilities import Capabilities
from translation.events import StreamTranslator
from translation.notes import RewriteNote
from translation.openai_chat.tokenize import llamacpp_tokenize_body, tokenize_chat_body, tokenize_count
from translation.schemas import MessagesRequest

RequestBuild = Callable[..., tuple[dict[str, Any], list[RewriteNote]]]
ResponseTranslate = Callable[..., tuple[dict[str, Any], list[RewriteNote]]]


def server_root(base_url: str) -> str:
    """The server root of an OpenAI base URL: ``http://h:8000/v1`` -> ``http://h:8000`` (tokenize
    and fingerprint endpoints live beside /v1)."""
    return base_url.rstrip("/").removesuffix("/v1")


class OpenAIAdapter(BackendAdapter):
    """An OpenAI-style kind: its endpoint ``path`` under the base URL and its translation module's
    request builder, response translator and stream translator class."""

    path: ClassVar[str]
    request_build: ClassVar[RequestBuild]
    response_build: ClassVar[ResponseTranslate]
    translator: ClassVar[Callable[..., StreamTranslator]]

    # The server tokenizes the translated request (chat template included): cheap and local.
    count_methods = frozenset({"chat_tokenize", "llamacpp_tokenize"})
    prompt_count_methods = count_methods

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {"authorization": f"Bearer {api_key}"} if api_key else {}

    def call_build(self, *, req: MessagesRequest, route: RouteInfo,
                   client_headers: Mapping[str, str] | None = None) -> UpstreamCall:
        body, notes = type(self).request_build(req, route.capabilities,
                                               upstream_model=route.upstream_model or req.model,
                                               backend_name=route.backend.name, client_headers=client_headers)
        headers, _ = self.headers(route, stream=req.stream)
        return UpstreamCall(url=f"{route.backend.base_url}{self.path}", body=body, headers=headers, notes=notes)

    def response_translate(self, *, body: dict[str, Any], req: MessagesRequest, route: RouteInfo,
                           message_id: str) -> tuple[dict[str, Any], list[RewriteNote]]:
        return type(self).response_build(body, route.capabilities, request=req, message_id=message_id)

    def stream_translator(self, *, req: MessagesRequest, route: RouteInfo, message_id: str,
                          input_tokens: int) -> StreamTranslator:
        caps: Capabilities = route.capabilities
        return type(self).translator(caps, request=req, message_id=message_id, input_tokens_estimate=input_tokens)

    async def tokens_count(self, method: str, call: UpstreamCall, route: RouteInfo) -> int | None:
        if method == "llamacpp_tokenize":
            return await self._llamacpp_tokenize(call, route)
        if method == "chat_tokenize":
            url = server_root(route.backend.base_url) + route.capabilities.tokenize_path
            return tokenize_count(await self.post_json(route, url, tokenize_chat_body(call.body), call.headers))
        return await super().tokens_count(method, call, route)

    async def _llamacpp_tokenize(self, call: UpstreamCall, route: RouteInfo) -> int | None:
        """llama.cpp: the chat template rendered by ``/apply-template``, then ``/tokenize``."""
        root = server_root(route.backend.base_url)
        rendered = await self.post_json(route, root + "/apply-template", tokenize_chat_body(call.body), call.headers)
        prompt = rendered.get("prompt") if isinstance(rendered, dict) else None
        if not isinstance(prompt, str):
            return None
        answer = await self.post_json(route, root + route.capabilities.tokenize_path,
                                      llamacpp_tokenize_body(prompt), call.headers)
        return tokenize_count(answer)
