"""OpenAI Responses API backends (OpenAI, vLLM's ``/v1/responses``, LM Studio, ...)."""

from __future__ import annotations

from gateway.backends.openai import OpenAIAdapter
from translation.openai_responses import ResponsesStreamTranslator, build_request, translate_response


class OpenAIResponsesAdapter(OpenAIAdapter):
    kind = "openai_responses"
    path = "/responses"
    request_build = staticmethod(build_request)
    response_build = staticmethod(translate_response)
    translator = ResponsesStreamTranslator
