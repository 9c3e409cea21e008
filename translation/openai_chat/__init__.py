"""Translation to and from OpenAI Chat Completions backends (vLLM, SGLang, llama.cpp, Ollama, ...)."""

from translation.openai_chat.request import build_request
from translation.openai_chat.response import translate_response
from translation.openai_chat.stream import ChatStreamTranslator

__all__ = ["ChatStreamTranslator", "build_request", "translate_response"]
