"""Errors of this plugin (subclasses of bdcore's ComponentError)."""

from bdcore.errors import ComponentError


class DiffpureError(ComponentError):
    """A diffpure component was misconfigured or its files are missing."""
