"""labctl: a containerized lab for Linux shared-memory IPC."""

__version__ = "0.1.0"
