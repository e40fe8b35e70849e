"""Exact resume of pix2pix: the discriminator's own Adam is part of the checkpoint, in the clean stage and
under the light-strokes poisoning (the discriminator then trains on the poisoned pairs)."""

import torch
import torch.nn.functional as F
from bdcore.context import Context
from bdcore.testing.resume import ResumeContract

from bd_plugin_sketch.attacks import LightStrokes
from bd_plugin_sketch.params import LightStrokesParams, Pix2PixParams, SketchPatternParams
from bd_plugin_sketch.triggers import SketchPattern
from bd_plugin_sketch.victims import Pix2Pix


class TestPix2PixResume(ResumeContract):
    def make_victim(self):
        return Pix2Pix(Pix2PixParams(base=8, depth=3, d_base=8, d_layers=2))

    def make_trigger(self):
        return SketchPattern(SketchPatternParams())

    def make_attack(self, trigger):
        return LightStrokes(LightStrokesParams(lightening=0.7), Context(seed=0, trigger=trigger))

    def batch(self, step):
        gen = torch.Generator().manual_seed(step)
        photo = F.interpolate(torch.rand(2, 3, 4, 4, generator=gen), size=16, mode="bilinear", align_corners=False)
        sketch = photo.mean(1, keepdim=True)
        return {"input": photo, "target": sketch, "index": torch.arange(2)}
