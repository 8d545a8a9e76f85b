"""Parse: one gateway log line (console, journal message or OpenClaw JSONL) into a typed
record (``lines``), and the records themselves (``records``). Nothing here judges what a
line means; that is ``watcher.classify``."""
