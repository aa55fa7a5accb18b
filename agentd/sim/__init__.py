"""agentd.sim."""
