"""The gateway side: reading ``openclaw.json`` (``chains``: each agent's fallback chain
and the providers) and what it says about the fallback-pin plugin (``plugin``)."""
