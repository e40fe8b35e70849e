"""The eight baseline triggers: pure batched functions + thin registered TriggerBase classes."""

from bd_plugin_baselines.triggers.badnets import BadNets, badnets
from bd_plugin_baselines.triggers.blended import Blended, blended
from bd_plugin_baselines.triggers.fiba import FIBA, fiba
from bd_plugin_baselines.triggers.ftrojan import FTrojan, ftrojan
from bd_plugin_baselines.triggers.issba import ISSBA, issba
from bd_plugin_baselines.triggers.lira import LIRA, lira
from bd_plugin_baselines.triggers.sig import SIG, sig
from bd_plugin_baselines.triggers.wanet import WaNet, wanet

__all__ = [
    "FIBA",
    "ISSBA",
    "LIRA",
    "SIG",
    "BadNets",
    "Blended",
    "FTrojan",
    "WaNet",
    "badnets",
    "blended",
    "fiba",
    "ftrojan",
    "issba",
    "lira",
    "sig",
    "wanet",
]
