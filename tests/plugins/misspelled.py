"""A plugin with a misspelled hook implementation."""

from bdcore import hookimpl


@hookimpl
def register_trigers(register):  # noqa: ANN001 - misspelled on purpose
    register("never", object)
