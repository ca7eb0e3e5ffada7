"""Plain PyTorch: ``runstack.watch(model, log="gradients", log_freq=100)``.

Parameter and gradient norms and histograms are recorded through hooks every ``log_freq`` training
forward passes, into the current step of the run (``commit=False``), so they line up
with the metrics the training loop logs.
"""

from __future__ import annotations

from typing import Any

from runstack.core.media import Histogram
from runstack.errors import InvalidArgumentError
from runstack.integrations._common import require

torch = require("torch", "lightning")
_watchers: dict[int, _Watcher] = {}


class _Watcher:
    def __init__(self, model: Any, run: Any, log: str, log_freq: int) -> None:
        self.run, self.log_freq, self.calls, self.capture = run, log_freq, 0, False
        self.parameters = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.log_parameters = log in ("parameters", "all")
        self.log_gradients = log in ("gradients", "all")
        self.pending: dict[str, float] = {}
        self.handles = [model.register_forward_pre_hook(self._before_forward)]
        if self.log_gradients:
            for name, param in self.parameters:
                self.handles.append(param.register_post_accumulate_grad_hook(self._gradient_hook(name)))

    def _before_forward(self, module: Any, args: Any) -> None:
        if not module.training:
            return
        self.calls += 1
        self.capture = self.calls % self.log_freq == 0
        self.pending = {}
        if self.capture and self.log_parameters:
            stats: dict[str, Any] = {}
            with torch.no_grad():
                for name, param in self.parameters:
                    stats[f"parameters/{name}.norm"] = param.detach().norm().item()
                    stats[f"parameters/{name}"] = Histogram(param.detach())
            self.run.log(stats, commit=False)

    def _gradient_hook(self, name: str) -> Any:
        def record(param: Any) -> None:
            if not self.capture or param.grad is None:
                return
            self.pending[f"gradients/{name}.norm"] = param.grad.detach().norm().item()
            self.pending[f"gradients/{name}"] = Histogram(param.grad.detach())
            if len(self.pending) == 2 * len(self.parameters):
                self.run.log(self.pending, commit=False)
                self.capture = False

        return record

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()


def watch(model: Any, log: str = "gradients", log_freq: int = 100, run: Any = None) -> None:
    """Record parameter and/or gradient norms of ``model`` every ``log_freq`` training steps.

    Args:
        model: a ``torch.nn.Module``.
        log: "gradients", "parameters" or "all".
        log_freq: every how many training forward passes to record.
        run: the run to log to (default: the current run).
    """
    from runstack.core.session import current

    if log not in ("gradients", "parameters", "all"):
        raise InvalidArgumentError("log", log, "'gradients', 'parameters' or 'all'")
    if not isinstance(log_freq, int) or log_freq < 1:
        raise InvalidArgumentError("log_freq", log_freq, "a positive int")
    unwatch(model)
    _watchers[id(model)] = _Watcher(model, run or current(), log, log_freq)


def unwatch(model: Any = None) -> None:
    """Remove every hook ``watch`` added to ``model`` (all watched models when None)."""
    keys = list(_watchers) if model is None else [id(model)]
    for key in keys:
        watcher = _watchers.pop(key, None)
        if watcher is not None:
            watcher.remove()
