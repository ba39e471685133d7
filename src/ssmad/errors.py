"""Exceptions shared by every room of ssmad.

The command line maps :class:`InputError` and :class:`ConfigError` to exit code 2 and prints their message
(which names the file, the problem and the fix) instead of a traceback.
"""

from __future__ import annotations


class SsmadError(Exception):
    """Base class of every error raised on purpose by ssmad."""


class InputError(SsmadError, ValueError):
    """Bad user input: a wrong path, an unreadable file, inconsistent shapes, NaN values, ..."""


class ConfigError(SsmadError, ValueError):
    """An unknown or invalid configuration key or value."""


class MissingDependencyError(SsmadError, ImportError):
    """An optional dependency is needed for the requested feature; the message says which extra installs it."""
