"""OpenAI Chat Completions backends (vLLM, SGLang, llama.cpp, Ollama, OpenAI, ...)."""

from __future__ import annotations

from gateway.backends.openai import OpenAIAdapter
from translation.openai_chat import ChatStreamTranslator, build_request, translate_response


class OpenAIChatAdapter(OpenAIAdapter):
    kind = "openai_chat"
    path = "/chat/completions"
    request_build = staticmethod(build_request)
    response_build = staticmethod(translate_response)
    translator = ChatStreamTranslator
