"""Small helpers every room may use: crash-safe writes (``atomic``), durations,
secret redaction, logging set-up, the Prometheus metrics, and the state directory's
file names (``statedir``). None of them decides anything, and none imports a room
above it; the pure core uses none of them."""
