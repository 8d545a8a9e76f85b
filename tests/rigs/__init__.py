"""Rigs that start the real daemon and its world for tests, soaks and benches (not
shipped in the package)."""
