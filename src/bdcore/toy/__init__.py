"""The toy plugin: a complete, tiny bdcore plugin that ships with core (entry point ``toy``).

Every spec in the docs runs on a core-only install with it, in seconds on a CPU, and
bdcore's own tests, the example plugin's and every generated plugin's (``bdcore
new-plugin``) use it as the victim, data and attack of their end-to-end runs:

* victim ``toy-denoiser``: a 3-layer residual CNN; clean task = restore the image from a
  noisy copy (noise added inside the victim, seeded per batch);
* trigger ``toy-patch``: a faint checkerboard added everywhere plus a white square in the
  bottom-right corner (size relative to the image), local enough for a tiny CNN to learn in
  a few dozen steps;
* attacks ``toy-invert`` (data-poisoning: poisoned targets are the inverted image) and
  ``toy-invert-controlled`` (training-controlled, the same target with an explicit clean +
  backdoor loss);
* dataset ``toy-smooth``: seeded smooth random images (no files needed).

It registers through the same hooks as any plugin (:mod:`bdcore.toy.plugin`); ``bdcore
plugins`` lists it as ``toy (bdcore VERSION)`` and ``BDCORE_DISABLE_PLUGINS=toy`` hides it.
Its params (:mod:`bdcore.toy.params`) import no torch, like every plugin's should.
"""
