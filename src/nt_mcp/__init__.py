"""nt-mcp: a Model Context Protocol server with real trading tools."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("nt-mcp")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+source"

__all__ = ["__version__"]
