"""Reusable fixtures that run real services (journald, Mosquitto) for the tests."""
