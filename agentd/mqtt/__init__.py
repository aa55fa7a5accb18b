"""agentd.mqtt."""
