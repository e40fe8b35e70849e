"""bd-plugin-sketch: poison-only "light strokes" backdoor on face sketch synthesis (bdcore plugin)."""

__version__ = "0.1.0"
