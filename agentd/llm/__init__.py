"""The language model link: streamed chat replies, tools, conversation history.

`ChatLlm` imports the `openai` SDK only when constructed, so importing this package is
cheap on a Pi.
"""

from agentd.llm.client import ChatLlm
from agentd.llm.events import (
    LlmDone,
    LlmEvent,
    RequestStarted,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
    UsageReported,
)
from agentd.llm.history import ConversationHistory
from agentd.llm.tools import Tool, ToolRegistry, ToolResult

__all__ = [
    "ChatLlm",
    "ConversationHistory",
    "LlmDone",
    "LlmEvent",
    "RequestStarted",
    "TextDelta",
    "Tool",
    "ToolCallFinished",
    "ToolCallStarted",
    "ToolRegistry",
    "ToolResult",
    "UsageReported",
]
