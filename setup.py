"""Only the optional C scan loop of the journal source; everything else is in pyproject.toml.

``watcher.source._jscan`` needs gcc and libsystemd-dev (the same packages systemd-python
needs). It is ``optional``: when it cannot be built, the install still succeeds and the
journal source uses its pure-Python loop.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "watcher.source._jscan",
            sources=["watcher/source/_jscan.c"],
            libraries=["systemd"],
            extra_compile_args=["-O2", "-std=gnu11", "-Wall"],
            optional=True,
        )
    ]
)
