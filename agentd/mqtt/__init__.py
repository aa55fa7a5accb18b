"""agentd.mqtt: fleet management (status, state, health, metrics, events, HA discovery,
remote commands) over one paho-mqtt connection. paho itself is imported lazily."""

from agentd.mqtt.commands import CommandTarget
from agentd.mqtt.service import MqttService

__all__ = ["CommandTarget", "MqttService"]
