"""Small shell helpers every room may use: crash-safe writes (``atomic``), durations,
secret redaction, logging set-up, the Prometheus metrics, and the steady clock. None of
them decides anything; the pure core uses none of them."""
