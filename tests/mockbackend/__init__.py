"""The project's scripted OpenAI-compatible backend, for e2e tests, benchmarks and the demo.

Pure asyncio, no Django: `mock_server_start()` in a running loop, `MockServerThread` from sync
code, `python -m tests.mockbackend` from a shell. Scenarios live in `scenarios.py`.
"""

from tests.mockbackend.scenarios import SCENARIOS, Completion, Delta, Script, ToolCallFragment
from tests.mockbackend.server import MockServer, MockServerThread, mock_server_start

__all__ = [
    "SCENARIOS",
    "Completion",
    "Delta",
    "MockServer",
    "MockServerThread",
    "Script",
    "ToolCallFragment",
    "mock_server_start",
]
