"""Sweeps with real agents, real processes and real Optuna: grid coverage by concurrent agents,
sampled distributions, Bayesian search against random, Hyperband, killed agents, stop, Ctrl-C."""

from __future__ import annotations

import math
import os
import signal
import statistics
import subprocess
import sys
import textwrap
import time

import pytest

pytest.importorskip("optuna")
pytest.importorskip("yaml")

import runstack  # noqa: E402
from runstack.core.store import Store  # noqa: E402
from runstack.errors import SweepConfigError  # noqa: E402
from runstack.sweeps.config import expand_command, parse  # noqa: E402
from runstack.sweeps.study import Sweep  # noqa: E402

from ..conftest import ROOT  # noqa: E402

TRAIN = """
import argparse, json, os, sys, time, runstack
run = runstack.init()
cfg = dict(run.config)
with open(os.path.join(os.environ["OUT_DIR"], f"{run.id}.json"), "w") as out:
    json.dump({"argv": sys.argv[1:], "config": cfg}, out)
for step in range(int(os.environ.get("STEPS", "3"))):
    time.sleep(float(os.environ.get("SLEEP", "0")))
    run.log({"loss": abs(cfg.get("a", 0)) + 1.0 / (step + 1)})
run.finish()
"""


def _cli(store_dir, *args, env=None, **kwargs):
    full = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "RUNSTACK_DIR": str(store_dir), **(env or {})}
    return subprocess.run([sys.executable, "-m", "runstack", *args], env=full, capture_output=True, text=True,
                          timeout=kwargs.pop("timeout", 300), **kwargs)  # fmt: skip


def _agent(store_dir, sweep_id, *args, env=None):
    full = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "RUNSTACK_DIR": str(store_dir), **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "runstack", "agent", sweep_id, *args], env=full,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def _program(tmp_path):
    (tmp_path / "train.py").write_text(TRAIN)
    (tmp_path / "out").mkdir(exist_ok=True)
    return {"OUT_DIR": str(tmp_path / "out")}


def _yaml(tmp_path, text):
    path = tmp_path / "sweep.yaml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def _program_sweep(store_dir, tmp_path, body, *args):
    """A sweep whose program is the TRAIN script (written by ``_program``); ``body`` is the rest of the YAML."""
    path = _yaml(tmp_path, f"program: {tmp_path / 'train.py'}\n" + textwrap.dedent(body))
    return _create(store_dir, path, *args)


def _create(store_dir, path, *args):
    proc = _cli(store_dir, "sweep", "create", path, *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout.split()[2].rstrip(";")


# -- the config ----------------------------------------------------------------------------
def test_every_wandb_field_parses_and_the_command_macros_expand(tmp_path):
    config = parse({
        "name": "n", "description": "d", "project": "p", "entity": "e", "program": "train.py",
        "command": ["${env}", "${interpreter}", "${program}", "--fixed", "${args}", "${args_no_hyphens}", "${args_json}"],
        "method": "random", "metric": {"name": "val/loss", "goal": "maximize"}, "run_cap": 9,
        "early_terminate": {"type": "hyperband", "max_iter": 27, "eta": 3, "s": 2},
        "parameters": {
            "c": {"value": 1}, "cat": {"values": ["a", [1, 2]]}, "i": {"distribution": "int_uniform", "min": 1, "max": 4},
            "u": {"min": 0.0, "max": 1.0}, "qu": {"distribution": "q_uniform", "min": 0, "max": 10, "q": 2},
            "lu": {"distribution": "log_uniform", "min": -3.0, "max": 0.0},
            "luv": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-1},
            "qluv": {"distribution": "q_log_uniform_values", "min": 1, "max": 100, "q": 1},
            "n": {"distribution": "normal", "mu": 0, "sigma": 1}, "qn": {"distribution": "q_normal", "mu": 0, "sigma": 5, "q": 5},
            "ln": {"distribution": "log_normal", "mu": 0, "sigma": 0.5},
            "opt": {"parameters": {"momentum": {"values": [0.9, 0.99]}, "inner": {"parameters": {"k": {"value": 3}}}}},
        },
    })  # fmt: skip
    assert config.pruner().__class__.__name__ == "HyperbandPruner" and config.run_cap == 9
    values = config.config_of({p.name: p.distribution().low if hasattr(p.distribution() or 0, "low") else 0
                               for p in config.searched})  # fmt: skip
    assert values["opt"]["inner"] == {"k": 3} and values["c"] == 1
    cmd = expand_command(config, {"lr": 0.1, "opt": {"m": 0.9}, "flag": True}, "/py")
    assert cmd[:4] == ["/usr/bin/env", "/py", "train.py", "--fixed"]
    assert cmd[4:7] == ["--lr=0.1", "--opt.m=0.9", "--flag=True"] and cmd[7:10] == ["lr=0.1", "opt.m=0.9", "flag=True"]
    assert cmd[10] == '{"lr": 0.1, "opt": {"m": 0.9}, "flag": true}'


@pytest.mark.parametrize(("raw", "field"), [
    ({"method": "annealing", "parameters": {"a": {"values": [1]}}}, "method"),
    ({"method": "grid", "parameters": {"a": {"min": 0.0, "max": 1.0}}}, "parameters.a"),
    ({"method": "bayes", "parameters": {"a": {"values": [1]}}}, "metric"),
    ({"method": "random", "parameters": {"a": {"values": [1], "bogus": 2}}}, "parameters.a.bogus"),
    ({"method": "random", "parameters": {"a": {"distribution": "uniform", "min": 2, "max": 1}}}, "parameters.a.min"),
    ({"method": "random", "parameters": {"a": {"distribution": "beta"}}}, "parameters.a.distribution"),
    ({"method": "random", "metric": {"name": "m", "goal": "up"}, "parameters": {"a": {"value": 1}}}, "metric.goal"),
    ({"method": "random", "parameters": {"a": {"value": 1}}, "early_terminate": {"type": "median"}}, "early_terminate.type"),
    ({"method": "random", "parameters": {"a": {"value": 1}}, "run_cap": 0}, "run_cap"),
    ({"method": "random", "parameters": {"a": {"value": 1}}, "controller": {}}, "controller"),
])  # fmt: skip
def test_an_invalid_sweep_config_names_the_field_and_the_fix(raw, field):
    with pytest.raises(SweepConfigError, match=rf"sweep config {field} = .* is not valid: "):
        parse(raw)


def test_a_bad_file_is_a_clear_cli_error(store_dir, tmp_path):
    runstack.init().finish()
    path = _yaml(tmp_path, "method: grid\nparameters: {lr: {min: 0.1, max: 0.2}}\n")
    proc = _cli(store_dir, "sweep", "create", path)
    assert proc.returncode == 1 and "parameters.lr" in proc.stdout and "Traceback" not in proc.stderr


# -- search --------------------------------------------------------------------------------
@pytest.mark.slow
def test_three_agents_started_at_once_cover_a_12_point_grid_exactly_once(store_dir, tmp_path):
    env = _program(tmp_path)
    sweep_id = _program_sweep(
        store_dir,
        tmp_path,
        """
        method: grid
        metric: {name: loss}
        parameters:
          a: {values: [0, 1, 2, 3]}
          b: {values: [x, y, z]}
    """,
        "--project",
        "grid",
    )
    agents = [_agent(store_dir, sweep_id, env=env) for _ in range(3)]
    outs = [a.communicate(timeout=300) for a in agents]
    assert all(a.returncode == 0 for a in agents), [o[1][-2000:] for o in outs]
    views = runstack.Api(store_dir).runs(project="grid")
    combos = sorted((v.config["a"], v.config["b"]) for v in views)
    assert combos == sorted((a, b) for a in range(4) for b in "xyz")  # 12 runs, no duplicate
    assert all(v.status == "finished" and v.group == sweep_id for v in views)
    assert sum(int(o[0].split("ran ")[1].split()[0]) for o in outs) == 12
    shown = _cli(store_dir, "sweep", "show", sweep_id)
    assert "12 finished" in shown.stdout and f"{sweep_id}-t" in shown.stdout


def test_random_search_samples_follow_their_declared_distributions(store_dir):
    from scipy import stats

    runstack.init().finish()
    raw = {"method": "random", "parameters": {
        "u": {"min": 2.0, "max": 5.0}, "i": {"min": 1, "max": 6},
        "luv": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-1},
        "n": {"distribution": "normal", "mu": 3, "sigma": 2}, "ln": {"distribution": "log_normal", "mu": 0, "sigma": 0.5},
        "qu": {"distribution": "q_uniform", "min": 0, "max": 10, "q": 2}, "c": {"values": ["a", "b", "c"]},
        "k": {"value": 7}}}  # fmt: skip
    sweep = Sweep.create(Store(store_dir), raw, seed=1)
    draws = [sweep.claim().config for _ in range(400)]
    col = {k: [d[k] for d in draws] for k in draws[0]}
    assert stats.kstest(col["u"], stats.uniform(2, 3).cdf).pvalue > 1e-3
    assert (
        stats.kstest([math.log(v) for v in col["luv"]], stats.uniform(math.log(1e-4), math.log(1e3)).cdf).pvalue > 1e-3
    )
    assert stats.kstest(col["n"], stats.norm(3, 2).cdf).pvalue > 1e-3
    assert stats.kstest(col["ln"], stats.lognorm(0.5).cdf).pvalue > 1e-3
    assert stats.chisquare([col["i"].count(v) for v in range(1, 7)]).pvalue > 1e-3
    assert stats.chisquare([col["c"].count(v) for v in "abc"]).pvalue > 1e-3
    assert set(col["qu"]) <= {0, 2, 4, 6, 8, 10} and all(isinstance(v, int) for v in col["i"])
    assert set(col["k"]) == {7}


def _branin(x: float, y: float) -> float:
    return (
        (y - 5.1 / (4 * math.pi**2) * x * x + 5 / math.pi * x - 6) ** 2
        + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x)
        + 10
    )


@pytest.mark.slow
def test_bayes_beats_random_on_branin_over_several_seeds(store_dir):
    def train():
        run = runstack.init()
        run.log({"f": _branin(run.config["x"], run.config["y"])})
        run.finish()

    best: dict[str, list[float]] = {"bayes": [], "random": []}
    for method in best:
        for seed in range(5):
            raw = {"method": method, "metric": {"name": "f", "goal": "minimize"},
                   "parameters": {"x": {"min": -5.0, "max": 10.0}, "y": {"min": 0.0, "max": 15.0}}}  # fmt: skip
            sweep_id = runstack.sweep(raw, project=method, seed=seed)
            assert runstack.agent(sweep_id, function=train, count=30) == 30
            best[method].append(Sweep(Store(store_dir), sweep_id).best(1)[0]["value"])
    assert statistics.median(best["bayes"]) < statistics.median(best["random"]), best


@pytest.mark.slow
def test_hyperband_stops_bad_trials_early_with_status_pruned(store_dir):
    def train():
        run = runstack.init()
        for step in range(27):
            run.log({"loss": run.config["quality"] + 1.0 / (step + 1)})
        run.finish()

    raw = {"method": "random", "metric": {"name": "loss", "goal": "minimize"}, "run_cap": 30,
           "early_terminate": {"type": "hyperband", "min_iter": 1, "max_iter": 27, "eta": 3},
           "parameters": {"quality": {"min": 0.0, "max": 10.0}}}  # fmt: skip
    sweep_id = runstack.sweep(raw, seed=3)
    assert runstack.agent(sweep_id, function=train) == 30
    views = runstack.Api(store_dir).runs()
    pruned = [v for v in views if v.status == "pruned"]
    finished = [v for v in views if v.status == "finished"]
    assert pruned and finished and len(pruned) + len(finished) == 30
    assert all(len(v.history()) == 27 for v in finished)
    saved = [27 - len(v.history()) for v in pruned]
    assert min(saved) >= 0 and sum(saved) >= 27 and sum(1 for s in saved if s > 0) >= len(pruned) / 2
    statuses = {t["status"] for t in Sweep(Store(store_dir), sweep_id).trials()}
    assert statuses == {"pruned", "finished"}
    assert statistics.mean(v.config["quality"] for v in pruned) > statistics.mean(v.config["quality"] for v in finished)


# -- agents in real use --------------------------------------------------------------------
@pytest.mark.slow
def test_an_agent_killed_mid_trial_leaves_it_crashed_and_the_sweep_completes(store_dir, tmp_path):
    env = {**_program(tmp_path), "SLEEP": "0.4", "STEPS": "10"}
    sweep_id = _program_sweep(
        store_dir,
        tmp_path,
        """
        method: grid
        metric: {name: loss}
        parameters: {a: {values: [0, 1, 2, 3]}}
    """,
    )
    victim = _agent(store_dir, sweep_id, env=env)
    deadline = time.time() + 60
    while not list((tmp_path / "out").glob("*.json")) and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    victim.kill()
    victim.communicate()
    rescuer = _agent(store_dir, sweep_id, env={**env, "SLEEP": "0"})
    assert rescuer.wait(timeout=300) == 0, rescuer.stderr.read()[-2000:]
    trials = Sweep(Store(store_dir), sweep_id).trials()
    assert sorted(t["status"] for t in trials) == ["crashed", "finished", "finished", "finished"]
    crashed = next(t for t in trials if t["status"] == "crashed")
    assert runstack.Api(store_dir).run(crashed["run_id"]).status == "crashed"


@pytest.mark.slow
def test_stop_lets_the_running_trial_finish_and_resume_goes_on(store_dir, tmp_path):
    env = {**_program(tmp_path), "SLEEP": "0.3", "STEPS": "5"}
    sweep_id = _program_sweep(
        store_dir,
        tmp_path,
        """
        method: grid
        parameters: {a: {values: [0, 1, 2, 3, 4, 5]}}
    """,
    )
    agent = _agent(store_dir, sweep_id, env=env)
    while not list((tmp_path / "out").glob("*.json")):
        time.sleep(0.1)
    assert _cli(store_dir, "sweep", "stop", sweep_id).returncode == 0
    assert agent.wait(timeout=120) == 0
    trials = Sweep(Store(store_dir), sweep_id).trials()
    assert [t["status"] for t in trials] == ["finished"]  # the running one finished; no new one started
    assert _cli(store_dir, "sweep", "resume", sweep_id).returncode == 0
    assert _cli(store_dir, "agent", sweep_id, env={**env, "SLEEP": "0"}).returncode == 0
    assert len(Sweep(Store(store_dir), sweep_id).trials()) == 6


@pytest.mark.slow
@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_once_finishes_the_trial_twice_stops_now(store_dir, tmp_path, presses):
    env = {**_program(tmp_path), "SLEEP": "0.3", "STEPS": "8"}
    sweep_id = _program_sweep(
        store_dir,
        tmp_path,
        """
        method: grid
        metric: {name: loss}
        parameters: {a: {values: [0, 1, 2]}}
    """,
    )
    agent = _agent(store_dir, sweep_id, env=env)
    while not list((tmp_path / "out").glob("*.json")):
        time.sleep(0.1)
    for _ in range(presses):
        agent.send_signal(signal.SIGINT)
        time.sleep(0.3)
    out, err = agent.communicate(timeout=120)
    (view,) = runstack.Api(store_dir).runs()
    trials = Sweep(Store(store_dir), sweep_id).trials()
    assert len(trials) == 1  # no new trial after Ctrl-C
    if presses == 1:
        assert agent.returncode == 0 and view.status == "finished" and len(view.history()) == 8
        assert "stopping after the current trial" in err
    else:
        assert view.status in ("failed", "crashed") and len(view.history()) < 8
        assert trials[0]["status"] in ("failed", "crashed")


@pytest.mark.slow
def test_run_cap_holds_across_concurrent_agents(store_dir, tmp_path):
    env = _program(tmp_path)
    sweep_id = _program_sweep(
        store_dir,
        tmp_path,
        """
        method: random
        run_cap: 5
        parameters: {a: {min: 0.0, max: 1.0}}
    """,
    )
    agents = [_agent(store_dir, sweep_id, env=env) for _ in range(3)]
    assert all(a.wait(timeout=300) == 0 for a in agents)
    assert len(runstack.Api(store_dir).runs()) == 5


# -- integrations inside trials --------------------------------------------------------------
@pytest.mark.slow
def test_a_lightning_sweep_gives_linked_runs(store_dir):
    pytest.importorskip("lightning")
    import torch
    from lightning.pytorch import LightningModule, Trainer

    from runstack.integrations.lightning import RunstackLogger

    class Tiny(LightningModule):
        def __init__(self, lr: float) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.net = torch.nn.Linear(2, 1)

        def training_step(self, batch, index):
            loss = torch.nn.functional.mse_loss(self.net(batch[0]), batch[1])
            self.log("loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    def train():
        logger = RunstackLogger()
        x = torch.randn(16, 2)
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8)
        Trainer(max_epochs=1, logger=logger, log_every_n_steps=1, enable_checkpointing=False, enable_progress_bar=False,
                enable_model_summary=False, accelerator="cpu").fit(Tiny(logger.experiment.config["lr"]), loader)  # fmt: skip

    sweep_id = runstack.sweep({"method": "grid", "metric": {"name": "loss"},
                               "parameters": {"lr": {"values": [0.01, 0.1]}}}, project="pl")  # fmt: skip
    assert runstack.agent(sweep_id, function=train) == 2
    views = runstack.Api(store_dir).runs(project="pl")
    assert sorted(v.config["lr"] for v in views) == [0.01, 0.1]
    assert all(v.group == sweep_id and v.job_type == "sweep" and v.status == "finished" for v in views)
    assert all(t["value"] is not None for t in Sweep(Store(store_dir), sweep_id).trials())


@pytest.mark.slow
def test_a_transformers_sweep_gives_linked_runs(store_dir, tmp_path):
    pytest.importorskip("transformers")
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

    from runstack.integrations.transformers import RunstackCallback

    def train():
        lr = runstack.init().config["learning_rate"]  # the trial's run; the callback joins it too
        torch.manual_seed(0)
        model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=16, vocab_size=32, n_positions=8))
        data = [{"input_ids": t, "labels": t} for t in torch.randint(0, 32, (8, 8))]
        args = TrainingArguments(output_dir=str(tmp_path / "hf"), learning_rate=lr, num_train_epochs=1,
                                 per_device_train_batch_size=4, logging_steps=1, report_to=[], use_cpu=True,
                                 save_strategy="no", disable_tqdm=True)  # fmt: skip
        Trainer(model=model, args=args, train_dataset=data, callbacks=[RunstackCallback()]).train()

    sweep_id = runstack.sweep({"method": "grid", "metric": {"name": "train/loss"},
                               "parameters": {"learning_rate": {"values": [1e-3, 1e-2]}}}, project="hf")  # fmt: skip
    assert runstack.agent(sweep_id, function=train) == 2
    views = runstack.Api(store_dir).runs(project="hf")
    assert len(views) == 2 and sorted(v.config["learning_rate"] for v in views) == [1e-3, 1e-2]
    assert all(v.group == sweep_id and v.history()["train/loss"].notna().sum() == 2 for v in views)
    assert all(v.config["trainer"]["learning_rate"] == v.config["learning_rate"] for v in views)


EVERY_FIELD = """
import json, os, sys, runstack
run = runstack.init()
flags = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--"))
plain = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a and not a.startswith(("--", "{")))
as_json = json.loads(next(a for a in sys.argv[1:] if a.startswith("{")))
assert flags == plain and as_json == dict(run.config), (flags, plain, as_json, dict(run.config))
for step in range(9):
    run.log({"val": {"loss": run.config["lr"] * 10 + 1.0 / (step + 1)}})
run.finish()
"""


@pytest.mark.slow
def test_a_sweep_file_with_every_field_runs_through_the_cli(store_dir, tmp_path):
    (tmp_path / "prog.py").write_text(EVERY_FIELD)
    path = _yaml(
        tmp_path,
        f"""
        name: every-field
        description: all of wandb's sweep fields
        project: fields
        entity: team
        program: {tmp_path / "prog.py"}
        command:
          - ${{env}}
          - ${{interpreter}}
          - ${{program}}
          - ${{args}}
          - ${{args_no_hyphens}}
          - ${{args_json}}
        method: bayes
        metric: {{name: val/loss, goal: minimize}}
        run_cap: 6
        early_terminate: {{type: hyperband, max_iter: 9, eta: 3, s: 1}}
        parameters:
          lr: {{distribution: log_uniform_values, min: 0.001, max: 0.1}}
          q: {{distribution: q_uniform, min: 0, max: 8, q: 2}}
          li: {{distribution: log_uniform, min: -2, max: 0}}
          qlv: {{distribution: q_log_uniform_values, min: 1, max: 64, q: 1}}
          n: {{distribution: normal, mu: 0, sigma: 1}}
          qn: {{distribution: q_normal, mu: 0, sigma: 4, q: 2}}
          ln: {{distribution: log_normal, mu: 0, sigma: 0.3}}
          i: {{distribution: int_uniform, min: 1, max: 3}}
          u: {{distribution: uniform, min: 0, max: 1}}
          c: {{distribution: categorical, values: [relu, gelu]}}
          k: {{distribution: constant, value: 5}}
          fixed: {{value: on}}
          opt:
            parameters:
              name: {{values: [sgd, adam]}}
    """,
    )
    sweep_id = _create(store_dir, path)
    agent = _cli(store_dir, "agent", sweep_id)
    assert agent.returncode == 0, agent.stdout + agent.stderr
    views = runstack.Api(store_dir).runs(project="fields")
    assert len(views) == 6 and {v.status for v in views} <= {"finished", "pruned"}
    assert all(v.config["k"] == 5 and v.config["opt"]["name"] in ("sgd", "adam") for v in views)
    trials = Sweep(Store(store_dir), sweep_id).trials()
    assert all(t["status"] in ("finished", "pruned") for t in trials), trials
