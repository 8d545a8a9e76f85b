"""The pin file: its schema (``schema``), the core's state seen as a pin file
(``view``), the checks a file must pass before the gateway sees it (``check``), what
other processes read from it (``reads``), and the locked store that reads and writes
it (``store``)."""
