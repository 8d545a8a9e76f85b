"""The audit trail: an append-only, hash-chained log of every decision (``log``)."""
