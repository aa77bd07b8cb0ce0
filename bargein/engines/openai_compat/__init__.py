"""Engines for OpenAI-compatible services (OpenAI, vLLM, llama.cpp server, Ollama)."""

from bargein.engines.openai_compat._client import Endpoint
from bargein.engines.openai_compat.planner import (
    INTERRUPTED_MARKER,
    SPEECH_SYSTEM_PROMPT,
    OpenAIPlanner,
    Tool,
    ToolResult,
    schema_from_signature,
)
from bargein.engines.openai_compat.stt import OpenAIRecognizer, OpenAISTT
from bargein.engines.openai_compat.tts import OpenAITTS, estimate_word_starts

__all__ = [
    "INTERRUPTED_MARKER",
    "SPEECH_SYSTEM_PROMPT",
    "Endpoint",
    "OpenAIPlanner",
    "OpenAIRecognizer",
    "OpenAISTT",
    "OpenAITTS",
    "Tool",
    "ToolResult",
    "estimate_word_starts",
    "schema_from_signature",
]
