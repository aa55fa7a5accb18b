"""agentd: a voice-agent daemon for Raspberry Pi-class kiosks.

Kept import-free on purpose: `agentd version` and the systemd start path must not pay
for the cloud SDKs, so every heavy module is imported lazily where it is used.
"""

__version__ = "0.1.0"
