"""agentd.tts."""
