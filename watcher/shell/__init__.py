"""The shell: everything around the pure core that touches the world, for the daemon.

``snapshot`` (the crash protocol's file), ``watcher`` (``apply`` and its effects),
``loop`` (tasks, signals, sd_notify, probes and control wiring), ``clock`` (the
steady clock that wall-clock steps cannot fool), ``main`` (``run``)."""
