"""Operator diagnostics: the audio self-test, opt-in turn capture, the config fingerprint.

Everything an operator needs to measure a kiosk from afar (issue #15). The self-test is
one implementation shared by `agentd test-hardware` and MQTT `cmd/self_test`; capture
is off unless `privacy.allow_remote_capture` is set, and always visible when on.
"""
