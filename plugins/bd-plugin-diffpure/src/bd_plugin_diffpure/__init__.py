"""bd-plugin-diffpure: DDNM diffusion purification (super-resolution, colorization, two-stage)
and a small face-identification task (FaceNet-style victim, PGD adversarial examples).

Importing this package is cheap (no torch); components live in submodules.
"""

__version__ = "0.1.0"
