"""bd-plugin-example: the plugin of bdcore's plugin tutorial."""

__version__ = "0.1.0"
