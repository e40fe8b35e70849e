"""Entry point of bd-plugin-baselines: the registration hooks (torch-free)."""

from bd_plugin_baselines.registration_defenses import register_defenses, register_metrics
from bd_plugin_baselines.registration_triggers import register_triggers

__all__ = ["register_defenses", "register_metrics", "register_triggers"]
