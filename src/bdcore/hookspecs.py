"""Hook specifications for bdcore plugins.

Every hook here is a *registration hook*: bdcore calls it once, right after the
plugins are loaded, and the plugin answers by calling ``register`` zero or more
times. Nothing here is called inside a training loop; the engine calls the
registered components directly.

The five roles of a backdoor experiment each have one hook; the verbs of the
components they register (``inject_trigger``, ``build_victim``, ``attack_loss``,
``defend``, ``metric``) are the protocols in :mod:`bdcore.protocols`. A sixth hook,
:func:`register_datasets`, lets a plugin add the data sources its task needs, and a
seventh, :func:`register_observers`, the experiment trackers that watch a run.

``register(name, factory, *, params=NoParams, summary="", paper=None, aliases=())``
adds one component. ``factory`` is a callable or a lazy ``"package.module:attr"``
string; bdcore structures the spec's ``params`` table into the attrs class
``params`` and calls ``factory(params, ctx)`` with a :class:`bdcore.context.Context`.
A name that another plugin already registered is a hard error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from bdcore.registry import Register

hookspec = pluggy.HookspecMarker("bdcore")


@hookspec
def register_triggers(register: Register) -> None:
    """Offer trigger injectors: the ``inject_trigger`` step of poisoning.

    Called once after plugins load. Call ``register(name, factory, params=Params)``
    once per trigger. ``factory(params, ctx)`` must return an object satisfying
    :class:`bdcore.protocols.Trigger`: ``inject_trigger(images, *, strength=None,
    generator=None)`` maps ``B×C×H×W`` images in [0, 1] to images of the same shape,
    dtype and device, clamped to [0, 1]. A trigger declares ``learnable`` (it has a
    ``fit`` stage or trains jointly with the victim), ``needs_victim`` (test-time,
    e.g. adversarial, or a fit that uses the clean victim) and ``differentiable``; a fit
    that only builds surrogates of the victim's architecture declares ``builds_victim``.

    Example: ``bd_plugin_baselines`` registers ``badnets``, ``ftrojan``, ``wanet``.

    .. versionadded:: 0.1
    """


@hookspec
def register_victims(register: Register) -> None:
    """Offer victim models: the ``build_victim`` step.

    ``factory(params, ctx)`` *is* ``build_victim``: it returns a
    :class:`bdcore.protocols.Victim`, an ``nn.Module`` that also knows its task, its
    clean training loss (``clean_loss(batch)``) and how to predict
    (``predict(inputs)``), plus what the task needs (a codec's
    ``compress``/``decompress``).

    Example: ``bd_plugin_bavaft`` registers CompressAI codecs.

    .. versionadded:: 0.1
    """


@hookspec
def register_attack_losses(register: Register) -> None:
    """Offer attacks: the poisoning policy and the ``attack_loss`` objective.

    ``factory(params, ctx)`` returns a :class:`bdcore.protocols.AttackLoss`. It names
    the attack target (``poison(batch, trigger, generator)`` returns the poisoned
    batch with its attack target) and declares its threat model: for
    ``"data-poisoning"`` the engine trains the victim on the poisoned dataset with the
    victim's own clean loss; for ``"training-controlled"`` it calls
    ``attack_loss(victim, clean, poisoned)`` on every step.

    Example: ``bd_plugin_asfiba`` registers the AS-FIBA degradation objective.

    .. versionadded:: 0.1
    """


@hookspec
def register_defenses(register: Register) -> None:
    """Offer defenses: the ``defend`` step, run after the attack.

    ``factory(params, ctx)`` returns a :class:`bdcore.protocols.Defense` whose
    ``defend(victim, ctx)`` returns a :class:`bdcore.protocols.DefenseResult`: a
    defended model (fine-tuning, pruning), an input transform applied to every test
    input (JPEG, blur, purification), and/or per-input detection scores (STRIP).

    Example: ``bd_plugin_baselines`` registers ``jpeg``, ``fine-pruning``, ``strip``.

    .. versionadded:: 0.1
    """


@hookspec
def register_metrics(register: Register) -> None:
    """Offer evaluation metrics: the ``metric`` step.

    ``factory(params, ctx)`` returns a :class:`bdcore.protocols.Metric`, a streaming
    accumulator (``reset``/``update(batch)``/``compute()``) with pyiqa-style
    metadata: ``higher_is_better``, ``needs`` (which references it reads) and the
    splits it applies to.

    Example: bdcore registers ``psnr``, ``ssim`` and ``ms-ssim`` itself.

    .. versionadded:: 0.1
    """


@hookspec
def register_datasets(register: Register) -> None:
    """Offer data sources for the ``[data]`` section.

    ``factory(params, ctx)`` returns a :class:`bdcore.protocols.DataSource` whose
    ``splits()`` gives ``{"train": Dataset, "test": Dataset}`` of sample dicts (see
    :mod:`bdcore.data.sample`). Crops and augmentations happen inside the dataset;
    triggers are applied by the engine *after* them.

    Example: bdcore registers ``embedded``, ``image-folder``, ``paired-folder``,
    ``scored-csv`` and ``identity-folder``.

    .. versionadded:: 0.1
    """


@hookspec
def register_observers(register: Register) -> None:
    """Offer observers: experiment trackers and loggers that watch a run.

    ``factory(params, ctx)`` returns a :class:`bdcore.protocols.Observer`: an object whose
    ``on_event(event)`` receives the run's events (:mod:`bdcore.observe.events`: run start with
    the resolved spec and the manifest, stage start and end, progress, the logged scalars of
    clean and attack training and of fits, evaluation rows, image grids, messages, run end with
    status and results) and whose ``close()`` is called once at the end. Subclass
    :class:`bdcore.observe.base.ObserverBase` and override ``on_<kind>`` for the kinds you need.
    A spec chooses observers with ``[run] observers = ["name", { use = "name", params = {...} }]``,
    the command line with ``bdcore run --observe NAME``.

    An observer never fails the run: what it raises is reported (a warning, ``run.log`` and the
    manifest's ``observer_failures``) and the run goes on; an observer that keeps failing is
    switched off. An observer that needs an optional package raises
    :class:`bdcore.errors.MissingExtra` from its factory (exit code 3, before anything runs):
    use :func:`bdcore.observe.extras.require_module`. Inside a sweep the run belongs to a group
    (``RunStarted.group``, see :mod:`bdcore.observe.group`): nest the run under it.

    Example: bdcore registers ``tensorboard`` and ``mlflow`` itself.

    .. versionadded:: 0.2
    """
