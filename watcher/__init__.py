"""failover-watcher: keeps an OpenClaw gateway's model routing honest.

Data flow, one direction, I/O at the edges::

    source -> parse -> classify -> decide(state, event, now, policy) -> effects
"""

__version__ = "0.1.0"
