"""A plugin that raises on import."""

raise ImportError("brokenplug needs the module 'not_installed_anywhere'")
