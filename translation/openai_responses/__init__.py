"""Translation to and from OpenAI Responses API backends (OpenAI, vLLM ``/v1/responses``, LM Studio, ...)."""

from translation.openai_responses.request import build_request
from translation.openai_responses.response import translate_response
from translation.openai_responses.stream import ResponsesStreamTranslator

__all__ = ["ResponsesStreamTranslator", "build_request", "translate_response"]
