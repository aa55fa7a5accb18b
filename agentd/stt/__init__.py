"""agentd.stt."""
