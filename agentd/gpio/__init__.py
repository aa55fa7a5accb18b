"""agentd.gpio."""
