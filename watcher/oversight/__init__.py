"""Human oversight from Telegram: commands and card buttons that steer the
watcher through the same core as every other operator decision.

The parts, each with one reason to change:

- ``commands``: text -> a typed command or a clear error (pure);
- ``access``: allowlist, per-user rate limit, staleness (pure, ``now`` passed in);
- ``buttons``: card buttons and pending confirmations, persisted in the state dir so
  they survive a restart; also the last handled ``update_id``;
- ``acts``: carry a command out through ``Watcher.apply`` as operator events;
- ``status_view``: ``/status`` as a Telegram HTML message;
- ``poller``: the python-telegram-bot long-polling loop and the replies.

Kept free of imports here so ``watcher.config`` can import ``oversight.config``.
"""
