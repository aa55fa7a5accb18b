"""agentd.llm."""
