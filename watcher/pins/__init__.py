"""The pin file: its schema (``schema``), the checks a file must pass before the
gateway sees it (``check``), and the locked store that reads and writes it (``store``).
The core's view of its state as a pin file is ``watcher.core.state.to_pinfile``."""
