"""Build the tool allow-list from config: built-in tools and webhooks, nothing else.

Kept apart from `agentd.llm.tools` (the registry and the Tool type) so the tool kinds
can import the Tool type without the registry importing them back (no import cycle).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from agentd.config.sections_llm import LlmConfig
from agentd.llm.builtin_tools import builtin_tool
from agentd.llm.limits import LimitReport, ToolLimit, ToolLimiter
from agentd.llm.tools import CallStaff, Tool, ToolRegistry
from agentd.llm.webhook import webhook_tool


def tools_from_config(
    config: LlmConfig,
    call_staff: CallStaff,
    *,
    now: Callable[[], datetime] | None = None,
    on_limit: LimitReport | None = None,
) -> ToolRegistry:
    """Exactly the tools declared in `config.tools` (the allow-list), never the model's.

    Every tool is rate limited (`agentd.llm.limits`); `on_limit` hears each refusal.
    """
    tools: list[Tool] = []
    for tool_config in config.tools:
        if tool_config.kind == "webhook":
            tools.append(webhook_tool(tool_config))
        else:
            tools.append(builtin_tool(tool_config, config.opening_hours, call_staff, now))
    limits = {t.name: ToolLimit.for_tool(t) for t in config.tools}
    return ToolRegistry(tools, ToolLimiter(limits, on_limit))
