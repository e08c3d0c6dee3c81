"""Hooks on a user's own PyTorch model: ``watch(model, layers={name: dotted path})``.

The model's forward stays the user's. A pre-hook on the model takes ``labels=`` and
``sample_ids=`` out of the call before the user's forward sees them; forward hooks on the named
layers keep their outputs (pooled to one vector per sample); a hook on the model itself takes
the logits. Only while a :func:`core.capture.session` is open is anything handed on (to the
session's recorder, which copies off the device and writes in the background); outside a
session the hooks only strip the two keywords.

The hooks are excluded from ``torch.compile`` tracing (``torch.compiler.disable``): they have
side effects a graph cannot hold, and a graph break at the model's edge costs little.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import torch
from torch import nn

from core.errors import AmendError

logger = logging.getLogger(__name__)

__all__ = ["watch", "Watcher", "pool_output", "POOLINGS"]

#: Named poolings a layer may ask for; a tuple of dims means "mean over these dims".
POOLINGS = ("auto", "mean", "max", "first", "flatten")
Pooling = Union[str, Sequence[int]]


def _first_tensor(output: Any) -> Optional[torch.Tensor]:
    """The tensor in a module's output: itself, the first of a tuple/list, or a dict's ``logits``
    (Hugging Face style) / first tensor value."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, Mapping):
        if isinstance(output.get("logits"), torch.Tensor):
            return output["logits"]
        output = list(output.values())
    if isinstance(output, (tuple, list)):
        for item in output:
            if isinstance(item, torch.Tensor):
                return item
    if hasattr(output, "logits") and isinstance(output.logits, torch.Tensor):
        return output.logits
    return None


def pool_output(tensor: torch.Tensor, pooling: Pooling = "auto") -> tuple[torch.Tensor, str]:
    """One vector per sample from a layer's output of any rank >= 2, and how it was made.

    ``auto``: rank 2 as is; rank 3 (batch, tokens, features) the mean over the tokens; rank >= 4
    (batch, channels, *spatial) the mean over the spatial dims (global average pooling).
    ``mean`` / ``max``: over every dim but the first two for rank >= 4, over dim 1 for rank 3.
    ``first``: token 0 of a rank-3 output (a transformer's class token). ``flatten``: everything
    after the batch dim. A tuple of ints: the mean over those dims.
    """
    if tensor.dim() < 2:
        raise AmendError(f"a captured layer must give (batch, ...) outputs; got shape {tuple(tensor.shape)}")
    if tensor.dim() == 2 and pooling in ("auto", "mean", "max", "flatten"):
        return tensor, "none"
    if not isinstance(pooling, str):
        dims = tuple(int(d) for d in pooling)
        if 0 in dims or not dims:
            raise AmendError(f"pooling dims {dims} must name dims after the batch dim")
        return tensor.mean(dim=dims), f"mean over dims {list(dims)}"
    if pooling not in POOLINGS:
        raise AmendError(f"unknown pooling {pooling!r}; use one of {POOLINGS} or a tuple of dims")
    if pooling == "flatten":
        return tensor.flatten(1), "flatten"
    if pooling == "first":
        if tensor.dim() != 3:
            raise AmendError(f"pooling 'first' takes (batch, tokens, features); got shape {tuple(tensor.shape)}")
        return tensor[:, 0], "token 0"
    dims = (1,) if tensor.dim() == 3 else tuple(range(2, tensor.dim()))
    if pooling == "max":
        return tensor.amax(dim=dims), f"max over dims {list(dims)}"
    return tensor.mean(dim=dims), f"mean over dims {list(dims)}"


@dataclass
class PendingBatch:
    """What one forward call carries between the pre-hook and the model's own forward hook."""

    labels: Any
    sample_ids: Any
    layers: dict[str, torch.Tensor] = field(default_factory=dict)


class Watcher:
    """The hooks of one watched model; ``model._amend_watcher`` points at it."""

    def __init__(self, model: nn.Module, layers: Mapping[str, str], pooling: Mapping[str, Pooling] | None = None):
        self.model = model
        # torch.compile wraps a module in an OptimizedModule; layer paths are the user's own
        # module's, so resolve them there (the wrapper's pre-hook still strips the keywords).
        self.inner = getattr(model, "_orig_mod", model)
        self.layers = dict(layers)
        self.pooling: dict[str, Pooling] = {name: "auto" for name in self.layers}
        for name, how in (pooling or {}).items():
            if name not in self.layers:
                raise AmendError(f"pooling is given for {name!r}, which is not one of the captured layers {list(self.layers)}")
            self.pooling[name] = how
        self.pooling_used: dict[str, str] = {}
        self.pending: Optional[PendingBatch] = None
        self.handles: list[Any] = []
        modules = dict(self.inner.named_modules())
        for name, path in self.layers.items():
            if not isinstance(name, str) or not name:
                raise AmendError(f"layer names must be non-empty strings, got {name!r}")
            if path not in modules:
                known = [p for p in modules if p][:12]
                raise AmendError(
                    f"layer {name!r}: {type(self.inner).__name__} has no submodule {path!r}; "
                    f"it has e.g. {', '.join(known)}"
                )
            self.handles.append(modules[path].register_forward_hook(self._layer_hook(name)))
        self.handles.append(model.register_forward_pre_hook(self._pre_hook, with_kwargs=True))
        self.handles.append(model.register_forward_hook(self._post_hook))

    @property
    def model_class(self) -> str:
        cls = type(self.inner)
        return f"{cls.__module__}.{cls.__qualname__}"

    def remove(self) -> None:
        """Take every hook off the model."""
        for handle in self.handles:
            handle.remove()
        self.handles.clear()
        for target in {id(self.model): self.model, id(self.inner): self.inner}.values():
            if getattr(target, "_amend_watcher", None) is self:
                del target._amend_watcher

    # The three hooks. Excluded from compiled graphs (see the module docstring).
    def _pre_hook(self, module: nn.Module, args: tuple, kwargs: dict):
        return _pre_hook(self, args, kwargs)

    def _layer_hook(self, name: str) -> Callable:
        def hook(module: nn.Module, args: tuple, output: Any) -> None:
            _layer_hook(self, name, output)

        return hook

    def _post_hook(self, module: nn.Module, args: tuple, output: Any) -> None:
        _post_hook(self, output)


def _active_recorder():
    from core.capture.recording import active_recorder

    return active_recorder()


@torch.compiler.disable
def _pre_hook(watcher: Watcher, args: tuple, kwargs: dict):
    labels = kwargs.pop("labels", None)
    sample_ids = kwargs.pop("sample_ids", None)
    recorder = _active_recorder()
    if recorder is not None and sample_ids is None:
        recorder.note_missing_ids()
    watcher.pending = PendingBatch(labels, sample_ids) if recorder is not None and sample_ids is not None else None
    return args, kwargs


@torch.compiler.disable
def _layer_hook(watcher: Watcher, name: str, output: Any) -> None:
    pending = watcher.pending
    if pending is None:
        return
    tensor = _first_tensor(output)
    if tensor is None:
        raise AmendError(f"captured layer {name!r} returned {type(output).__name__}, not a tensor")
    with torch.no_grad():
        pooled, how = pool_output(tensor.detach(), watcher.pooling[name])
    watcher.pooling_used.setdefault(name, how)
    pending.layers[name] = pooled


@torch.compiler.disable
def _post_hook(watcher: Watcher, output: Any) -> None:
    pending, watcher.pending = watcher.pending, None
    if pending is None:
        return
    recorder = _active_recorder()
    if recorder is None:
        return
    logits = _first_tensor(output)
    if logits is None or logits.dim() != 2:
        raise AmendError(
            "the watched model must return (batch, classes) logits (or a tuple/dict whose first tensor is); "
            f"got {type(output).__name__}{'' if logits is None else tuple(logits.shape)}"
        )
    recorder.record(watcher, logits.detach(), pending.labels, pending.sample_ids, pending.layers)


def _attach(model: nn.Module, layers: Mapping[str, str] | None, pooling: Mapping[str, Pooling] | None) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise AmendError(f"capture.watch needs a torch.nn.Module (or a Module class), got {type(model).__name__}")
    old = getattr(model, "_amend_watcher", None)
    if old is not None:
        old.remove()  # watching again replaces the layers; hooks never pile up
    watcher = Watcher(model, layers or {}, pooling)
    model._amend_watcher = watcher
    return model


def watch(
    model: Any = None,
    *,
    layers: Mapping[str, str] | None = None,
    pooling: Mapping[str, Pooling] | None = None,
) -> Any:
    """Watch a model while it trains: capture named layers and logits per sample inside a session.

    Parameters
    ----------
    model : torch.nn.Module, a Module subclass, or None
        An instance: hooks are attached and the same instance is returned. A class: every
        instance gets the hooks when made (``@capture.watch(layers=...)`` above the class, or
        ``capture.watch(Net, layers=...)``). None: returns a decorator.
    layers : mapping, optional
        Capture name -> dotted submodule path (``{"pooled": "global_pool", "fc1": "head.fc1"}``).
        Each captured layer becomes a representation of the project.
    pooling : mapping, optional
        Capture name -> how outputs of rank > 2 become one vector per sample (see
        :func:`pool_output`); default ``auto``.

    The watched model takes two extra keyword arguments, ``labels=`` (class indices, a tensor)
    and ``sample_ids=`` (the project's sample ids, a list of strings, or an int tensor of
    positions in the project's sample order); they are removed before the model's forward runs.
    """
    if model is None:
        return functools.partial(watch, layers=layers, pooling=pooling)
    if isinstance(model, type):
        if not issubclass(model, nn.Module):
            raise AmendError(f"capture.watch decorates torch.nn.Module classes, not {model.__name__}")
        original_init = model.__init__

        @functools.wraps(original_init)
        def __init__(self, *args, **kwargs):
            original_init(self, *args, **kwargs)
            if type(self) is model or not hasattr(self, "_amend_watcher"):
                _attach(self, layers, pooling)

        model.__init__ = __init__
        return model
    return _attach(model, layers, pooling)
