"""A plugin that registers a name the toy plugin already owns."""

from bdcore import hookimpl


@hookimpl
def register_triggers(register):  # noqa: ANN001
    register("toy-patch", "bdcore.testing.toy:ToyPatch")
