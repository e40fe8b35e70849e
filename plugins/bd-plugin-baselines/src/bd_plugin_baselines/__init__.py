"""bd-plugin-baselines: baseline triggers and task-generic defenses for bdcore."""

__version__ = "0.1.0"
