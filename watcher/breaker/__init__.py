"""The breaker: the only process that writes the gateway's canonical ``openclaw.json``."""
