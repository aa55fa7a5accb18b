"""Audio front end: ALSA/simulated devices, VAD gate, playback, echo-safe barge-in."""
