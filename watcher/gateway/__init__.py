"""The gateway side of the loop: what ``openclaw.json`` says about the fallback-pin plugin."""
