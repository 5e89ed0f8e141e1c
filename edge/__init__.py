"""parkgate edge daemon: access decisions, plate recognition, local store and sync at a lot entrance."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("parkgate")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+source"
