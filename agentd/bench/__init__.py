"""agentd.bench."""
