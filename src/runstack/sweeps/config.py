"""Sweep configuration in the YAML wandb users write, checked field by field.

    program: train.py
    method: bayes                     # grid | random | bayes
    metric: {name: val/loss, goal: minimize}
    parameters:
      lr: {distribution: log_uniform_values, min: 1.0e-4, max: 1.0e-1}
      batch_size: {values: [16, 32, 64]}
      optimizer:
        parameters:                   # nested: the trial's config holds {"optimizer": {"momentum": ...}}
          momentum: {distribution: uniform, min: 0.8, max: 0.99}
    early_terminate: {type: hyperband, min_iter: 3, eta: 3}
    run_cap: 40

Each parameter becomes an Optuna distribution; shapes Optuna lacks (normal, quantised,
log-normal) are sampled as a uniform variable that is transformed, so every sampler
(grid, random, TPE) sees a plain search space.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from runstack.errors import SweepConfigError

METHODS = ("grid", "random", "bayes")
GOALS = ("minimize", "maximize")
DISTRIBUTIONS = ("constant", "categorical", "int_uniform", "uniform", "q_uniform", "log_uniform",
                 "log_uniform_values", "q_log_uniform_values", "normal", "q_normal", "log_normal")  # fmt: skip
TOP_KEYS = {"program", "command", "method", "metric", "parameters", "early_terminate", "run_cap", "name",
            "description", "project", "entity"}  # fmt: skip
PARAM_KEYS = {"value", "values", "distribution", "min", "max", "mu", "sigma", "q", "parameters", "probabilities"}
DEFAULT_COMMAND = ["${env}", "${interpreter}", "${program}", "${args}"]
_UNIT = 1e-12  # the uniform variable behind transformed shapes lives in (0, 1)


@dataclass(frozen=True)
class Parameter:
    """One searched (or constant) parameter; ``name`` is dotted for nested parameters."""

    name: str
    kind: str
    spec: dict[str, Any]

    def distribution(self) -> Any:
        """The Optuna distribution sampled for this parameter (None for a constant)."""
        from optuna import distributions as d

        s, kind = self.spec, self.kind
        if kind == "constant":
            return None
        if kind == "categorical":
            return d.CategoricalDistribution(list(range(len(s["values"]))))  # indices: values may be lists
        if kind == "int_uniform":
            return d.IntDistribution(int(s["min"]), int(s["max"]))
        if kind in ("uniform", "q_uniform"):
            return d.FloatDistribution(float(s["min"]), float(s["max"]))
        if kind in ("log_uniform_values", "q_log_uniform_values"):
            return d.FloatDistribution(float(s["min"]), float(s["max"]), log=True)
        if kind == "log_uniform":
            return d.FloatDistribution(float(s["min"]), float(s["max"]))  # exponent, natural log
        return d.FloatDistribution(_UNIT, 1.0 - _UNIT)  # normal family: a quantile

    def value(self, sampled: Any) -> Any:
        """The parameter's value from what the sampler drew."""
        s, kind = self.spec, self.kind
        if kind == "constant":
            return s["value"]
        if kind == "categorical":
            return s["values"][int(sampled)]
        if kind == "int_uniform":
            return int(sampled)
        if kind == "log_uniform":
            return math.exp(sampled)
        if kind in ("normal", "q_normal", "log_normal"):
            drawn = statistics.NormalDist(float(s.get("mu", 0.0)), float(s.get("sigma", 1.0))).inv_cdf(sampled)
            sampled = math.exp(drawn) if kind == "log_normal" else drawn
        if kind.startswith("q_"):
            q = float(s.get("q", 1.0))
            sampled = round(sampled / q) * q
            return int(sampled) if float(q).is_integer() and float(sampled).is_integer() else sampled
        return float(sampled)

    def grid(self) -> list[Any]:
        """The values a grid search visits (indices for categorical)."""
        if self.kind == "categorical":
            return list(range(len(self.spec["values"])))
        if self.kind == "int_uniform":
            return list(range(int(self.spec["min"]), int(self.spec["max"]) + 1))
        raise SweepConfigError(f"parameters.{self.name}", self.spec,
                               "method: grid needs `values` (or int_uniform, or a constant) for every parameter")  # fmt: skip


@dataclass(frozen=True)
class SweepConfig:
    method: str
    metric: str | None
    goal: str
    parameters: tuple[Parameter, ...]
    program: str | None
    command: tuple[str, ...]
    early_terminate: dict[str, Any] | None
    run_cap: int | None
    project: str | None
    name: str | None
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @property
    def searched(self) -> list[Parameter]:
        return [p for p in self.parameters if p.kind != "constant"]

    def grid_size(self) -> int:
        size = 1
        for p in self.searched:
            size *= len(p.grid())
        return size

    def config_of(self, sampled: dict[str, Any]) -> dict[str, Any]:
        """The nested config a trial runs with, from the sampler's draws."""
        out: dict[str, Any] = {}
        for p in self.parameters:
            node = out
            *parents, leaf = p.name.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = p.value(sampled.get(p.name))
        return out

    def pruner(self) -> Any:
        """Optuna's Hyperband pruner for ``early_terminate`` (or no pruning)."""
        import optuna

        et = self.early_terminate
        if not et:
            return optuna.pruners.NopPruner()
        eta = int(et.get("eta", 3))
        if "min_iter" in et:
            min_iter = int(et["min_iter"])
        else:
            min_iter = max(1, int(et["max_iter"]) // eta ** int(et.get("s", 2)))
        max_iter = int(et["max_iter"]) if "max_iter" in et else "auto"
        return optuna.pruners.HyperbandPruner(min_resource=min_iter, max_resource=max_iter, reduction_factor=eta)


def _param(name: str, spec: Any, where: str) -> list[Parameter]:
    if not isinstance(spec, dict):
        raise SweepConfigError(where, spec, "each parameter is a mapping such as {values: [1, 2]} or {value: 3}")
    unknown = set(spec) - PARAM_KEYS
    if unknown:
        raise SweepConfigError(f"{where}.{sorted(unknown)[0]}", spec, f"parameter keys are {sorted(PARAM_KEYS)}")
    if "parameters" in spec:
        nested = spec["parameters"]
        if not isinstance(nested, dict) or not nested:
            raise SweepConfigError(f"{where}.parameters", nested, "nested parameters are a non-empty mapping")
        return [p for key, sub in nested.items() for p in _param(f"{name}.{key}", sub, f"{where}.parameters.{key}")]
    kind = spec.get("distribution") or _infer(spec, where)
    if kind not in DISTRIBUTIONS:
        raise SweepConfigError(f"{where}.distribution", kind, f"one of {', '.join(DISTRIBUTIONS)}")
    needs = {"constant": ("value",), "categorical": ("values",), "normal": (), "log_normal": (), "q_normal": ()}
    for key in needs.get(kind, ("min", "max")):
        if key not in spec:
            raise SweepConfigError(f"{where}.{key}", None, f"distribution {kind} needs `{key}`")
    if kind == "categorical" and (not isinstance(spec["values"], list) or not spec["values"]):
        raise SweepConfigError(f"{where}.values", spec["values"], "a non-empty list of values")
    for key in ("min", "max", "mu", "sigma", "q"):
        if key in spec and (isinstance(spec[key], bool) or not isinstance(spec[key], int | float)):
            raise SweepConfigError(f"{where}.{key}", spec[key], "a number")
    if "min" in spec and "max" in spec and not spec["min"] < spec["max"]:
        raise SweepConfigError(f"{where}.min", spec["min"], f"less than max ({spec['max']})")
    if kind in ("log_uniform_values", "q_log_uniform_values") and spec["min"] <= 0:
        raise SweepConfigError(f"{where}.min", spec["min"], f"{kind} needs min > 0 (or use log_uniform)")
    if "sigma" in spec and spec["sigma"] <= 0 or "q" in spec and spec["q"] <= 0:
        raise SweepConfigError(where, spec, "sigma and q must be positive")
    if kind == "int_uniform" and not all(float(spec[k]).is_integer() for k in ("min", "max")):
        raise SweepConfigError(f"{where}.min", spec, "int_uniform bounds are integers")
    return [Parameter(name, kind, dict(spec))]


def _infer(spec: dict[str, Any], where: str) -> str:
    """wandb's rules: value -> constant, values -> categorical, int bounds -> int_uniform, ..."""
    if "value" in spec:
        return "constant"
    if "values" in spec:
        return "categorical"
    if "min" in spec and "max" in spec:
        ints = all(isinstance(spec[k], int) and not isinstance(spec[k], bool) for k in ("min", "max"))
        return "int_uniform" if ints else "uniform"
    if "mu" in spec or "sigma" in spec:
        return "normal"
    raise SweepConfigError(where, spec, "give value, values, min/max, or a distribution")


def parse(raw: Any) -> SweepConfig:
    """Check a sweep config (a dict from YAML/JSON); raise SweepConfigError naming the field."""
    if not isinstance(raw, dict):
        raise SweepConfigError("<sweep>", raw, "a sweep config is a mapping with method, metric and parameters")
    unknown = set(raw) - TOP_KEYS
    if unknown:
        raise SweepConfigError(sorted(unknown)[0], raw[sorted(unknown)[0]], f"sweep keys are {sorted(TOP_KEYS)}")
    method = raw.get("method")
    if method not in METHODS:
        raise SweepConfigError("method", method, "grid, random or bayes")
    metric = raw.get("metric") or {}
    if not isinstance(metric, dict) or (metric and not isinstance(metric.get("name"), str)):
        raise SweepConfigError("metric", metric, "{name: <logged metric>, goal: minimize|maximize}")
    goal = metric.get("goal", "minimize")
    if goal not in GOALS:
        raise SweepConfigError("metric.goal", goal, "minimize or maximize")
    if method == "bayes" and not metric:
        raise SweepConfigError("metric", None, "method: bayes needs a metric to optimise")
    params = raw.get("parameters")
    if not isinstance(params, dict) or not params:
        raise SweepConfigError("parameters", params, "a mapping of parameter names to their values or distributions")
    parameters = tuple(p for key, spec in params.items() for p in _param(str(key), spec, f"parameters.{key}"))
    early = raw.get("early_terminate")
    if early is not None:
        if not isinstance(early, dict) or early.get("type") != "hyperband":
            raise SweepConfigError("early_terminate.type", (early or {}).get("type"), "hyperband")
        if "min_iter" not in early and "max_iter" not in early:
            raise SweepConfigError("early_terminate", early, "hyperband needs min_iter or max_iter (with s)")
        if not metric:
            raise SweepConfigError("metric", None, "early_terminate needs a metric to compare trials by")
    run_cap = raw.get("run_cap")
    if run_cap is not None and (isinstance(run_cap, bool) or not isinstance(run_cap, int) or run_cap < 1):
        raise SweepConfigError("run_cap", run_cap, "a positive int")
    command = raw.get("command", DEFAULT_COMMAND)
    if not isinstance(command, list) or not all(isinstance(c, str) for c in command):
        raise SweepConfigError(
            "command", command, "a list of strings, e.g. [${env}, ${interpreter}, ${program}, ${args}]"
        )
    config = SweepConfig(method, metric.get("name"), goal, parameters, raw.get("program"), tuple(command), early,
                         run_cap, raw.get("project"), raw.get("name"), raw)  # fmt: skip
    if method == "grid":
        config.grid_size()  # every parameter must be enumerable
    return config


def expand_command(config: SweepConfig, values: dict[str, Any], interpreter: str) -> list[str]:
    """The trial's command line: wandb's macros replaced by the program and parameters."""
    flat = flatten(values)
    args = [f"--{k}={_arg(v)}" for k, v in flat.items()]
    out: list[str] = []
    for part in config.command:
        if part == "${env}":
            out.append("/usr/bin/env")
        elif part == "${interpreter}":
            out.append(interpreter)
        elif part == "${program}":
            out.append(str(config.program))
        elif part == "${args}":
            out.extend(args)
        elif part == "${args_no_hyphens}":
            out.extend(a[2:] for a in args)
        elif part == "${args_json}":
            out.append(json.dumps(values))
        else:
            out.append(part)
    return out


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested parameters as dotted names: {"opt": {"lr": 1}} -> {"opt.lr": 1}."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _arg(value: Any) -> str:
    return json.dumps(value) if isinstance(value, list | dict) else str(value)
