"""Classify: what a parsed record means. ``table`` is the failure classes (the
taxonomy's data), ``taxonomy`` the signatures that map a record to a class, and
``evidence`` turns a record and its class into the core's event (``to_event``)."""
