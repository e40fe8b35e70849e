"""Mixed precision for the training stages, and the parts that must stay in float32.

``[train] precision`` (and ``[attack] precision``) selects:

* ``"32"``: float32 throughout (the default);
* ``"bf16"``: the forward pass under ``torch.autocast(dtype=torch.bfloat16)``; weights, gradients and
  optimizer state stay float32, no loss scaling (bfloat16 has float32's exponent range);
* ``"16-mixed"``: ``torch.autocast(dtype=torch.float16)`` with a ``torch.amp.GradScaler``
  (PyTorch's AMP recipe: scale the loss, unscale before clipping, step through the scaler).

Evaluation (predictions and metrics) always runs in float32.

Some computations lose too much in 16 bits: entropy models (likelihoods of quantised latents),
DCT tables, statistics. A component says so in two ways, both honoured under autocast:

* ``keep_fp32`` on a module (see :class:`bdcore.protocols.FullPrecision`): ``True`` runs that module's
  ``forward`` in float32; on a victim or trigger, a tuple runs those submodules in float32 (classes,
  class names such as ``"EntropyBottleneck"``, or dotted paths from ``named_modules()``);
* :func:`fp32` on a function or method.

In both cases autocast is switched off for the call and half-precision tensor arguments are cast to
float32, so the outputs are float32.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal, TypeVar

import torch
from torch import Tensor, nn

PrecisionName = Literal["32", "bf16", "16-mixed"]
F = TypeVar("F", bound=Callable[..., Any])

_HALF = (torch.float16, torch.bfloat16)
_AUTOCAST_DEVICES = ("cpu", "cuda", "mps", "xpu")


def _autocasting() -> list[str]:
    """Device types whose autocast is on right now."""
    out = []
    for dev in _AUTOCAST_DEVICES:
        try:
            if torch.is_autocast_enabled(dev):
                out.append(dev)
        except (RuntimeError, TypeError):  # a device type this build does not know
            continue
    return out


def _to_fp32(value: Any) -> Any:
    if isinstance(value, Tensor) and value.dtype in _HALF:
        return value.float()
    if isinstance(value, tuple | list):
        return type(value)(_to_fp32(v) for v in value)
    return value


def fp32(fn: F) -> F:
    """Run ``fn`` in float32 under autocast: autocast off, half-precision tensor arguments cast to float32.

    Outside autocast it calls ``fn`` unchanged (no cost). Use it on precision-critical functions
    (DCT transforms, likelihoods, statistics)::

        @fp32
        def block_dct(x: Tensor) -> Tensor: ...
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        active = _autocasting()
        if not active:
            return fn(*args, **kwargs)
        with contextlib.ExitStack() as stack:
            for dev in active:
                stack.enter_context(torch.autocast(device_type=dev, enabled=False))
            return fn(*_to_fp32(args), **{k: _to_fp32(v) for k, v in kwargs.items()})

    return wrapper  # type: ignore[return-value]


def fp32_modules(root: nn.Module) -> list[nn.Module]:
    """The submodules of ``root`` (itself included) that must run in float32: those whose ``keep_fp32`` is
    ``True``, and those named by a ``keep_fp32`` tuple of an ancestor (a class, a class name or a dotted
    path relative to that ancestor)."""
    chosen: dict[int, nn.Module] = {}
    for _, module in root.named_modules():
        flag = getattr(module, "keep_fp32", False)
        if flag is True:
            chosen[id(module)] = module
        elif isinstance(flag, tuple | list | frozenset | set):
            names = set(flag)
            for sub_path, sub in module.named_modules():
                classes = tuple(n for n in names if isinstance(n, type))
                if sub_path in names or type(sub).__name__ in names or (classes and isinstance(sub, classes)):
                    chosen[id(sub)] = sub
    return list(chosen.values())


class Fp32Islands:
    """Run the :func:`fp32_modules` of every root through :func:`fp32` until :meth:`remove` (their
    ``forward`` is wrapped on the instance; outside autocast the wrapper calls it unchanged)."""

    def __init__(self, roots: Iterable[nn.Module]) -> None:
        self.patched: list[tuple[nn.Module, Any]] = []
        seen: set[int] = set()
        for root in roots:
            for module in fp32_modules(root):
                if id(module) in seen:
                    continue
                seen.add(id(module))
                self.patched.append((module, module.__dict__.get("forward")))
                module.forward = fp32(module.forward)  # type: ignore[method-assign]

    @property
    def modules(self) -> list[nn.Module]:
        return [m for m, _ in self.patched]

    def remove(self) -> None:
        for module, own in reversed(self.patched):
            if own is None:
                del module.forward
            else:
                module.forward = own  # type: ignore[method-assign]
        self.patched = []


@contextlib.contextmanager
def fp32_islands(roots: Iterable[nn.Module]) -> Iterator[list[nn.Module]]:
    """While the block runs, the :func:`fp32_modules` of every root run their ``forward`` through
    :func:`fp32`; yields those modules."""
    islands = Fp32Islands(roots)
    try:
        yield islands.modules
    finally:
        islands.remove()


class MixedPrecision:
    """Autocast and loss scaling for one training loop, as PyTorch's AMP recipe.

    Args:
        precision: ``"32"``, ``"bf16"`` or ``"16-mixed"``.
        device_type: ``"cpu"``, ``"cuda"``… (the device of the parameters).
    """

    def __init__(self, precision: str = "32", device_type: str = "cpu") -> None:
        if precision not in ("32", "bf16", "16-mixed"):
            raise ValueError(f'precision must be "32", "bf16" or "16-mixed", got {precision!r}')
        self.precision = precision
        self.device_type = device_type
        self.dtype = {"32": torch.float32, "bf16": torch.bfloat16, "16-mixed": torch.float16}[precision]
        self.enabled = precision != "32"
        self.scaler = torch.amp.GradScaler(device_type) if precision == "16-mixed" else None

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The forward pass's context (a no-op at ``"32"``)."""
        if not self.enabled:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)

    def backward(self, loss: Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def step(self, optimizer: torch.optim.Optimizer, params: list[nn.Parameter], grad_clip: float | None) -> None:
        """Clip (on unscaled gradients) and step; with a scaler, a step whose gradients overflowed is skipped
        and the scale lowered."""
        if self.scaler is not None:
            if grad_clip is not None:
                self.scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(params, grad_clip)
            self.scaler.step(optimizer)
            self.scaler.update()
            return
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        optimizer.step()

    def state_dict(self) -> dict[str, Any]:
        return self.scaler.state_dict() if self.scaler is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)


def has_conv(module: nn.Module) -> bool:
    """Whether ``module`` holds a 2-D convolution (where the channels-last layout pays)."""
    return any(isinstance(m, nn.Conv2d | nn.ConvTranspose2d) for m in module.modules())


def channels_last_batch(batch: dict[str, Any]) -> dict[str, Any]:
    """4-D floating tensors of ``batch`` in the channels-last memory layout (values unchanged)."""
    return {
        k: (
            v.contiguous(memory_format=torch.channels_last)
            if isinstance(v, Tensor) and v.ndim == 4 and v.is_floating_point()
            else v
        )
        for k, v in batch.items()
    }


def compile_children(modules: Iterable[nn.Module]) -> list[nn.Module]:
    """``torch.compile`` (in place, state-dict keys unchanged) the direct children with parameters of each
    module; returns them. The backend is ``BDCORE_COMPILE_BACKEND`` (default ``"inductor"``)."""
    backend = os.environ.get("BDCORE_COMPILE_BACKEND", "inductor")
    done = []
    for module in modules:
        for child in module.children():
            if any(True for _ in child.parameters()):
                child.compile(backend=backend)
                done.append(child)
    return done


def uncompile(modules: Iterable[nn.Module]) -> None:
    """Undo :func:`compile_children` (evaluation sees new shapes; eager is simpler there)."""
    for module in modules:
        if getattr(module, "_compiled_call_impl", None) is not None:
            module._compiled_call_impl = None
