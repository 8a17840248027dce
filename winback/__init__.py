"""winback: learn how user interest decays, simulate users, and train win-back policies."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("winback")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
