"""``runstack sweep create|ls|show|stop|resume`` and ``runstack agent``."""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table
from rich.text import Text


def _open(store_dir: str | None, sweep_id: str) -> Any:
    from runstack.core.store import Store
    from runstack.sweeps import _require
    from runstack.sweeps.study import Sweep

    _require()
    return Sweep(Store(store_dir, create=False), sweep_id)


def register(main: click.Group, dir_option: Any, console: Any) -> None:
    @main.group("sweep")
    def sweep() -> None:
        """Hyperparameter sweeps (wandb's sweep YAML, searched by Optuna, stored in the store)."""

    @sweep.command("create")
    @dir_option
    @click.argument("config_file", type=click.Path(exists=True, dir_okay=False))
    @click.option("--project", "-p", default=None, help="Project of the trials' runs (default: the file's).")
    @click.option("--seed", type=int, default=None, help="Seed the search, so that it can be reproduced.")
    def create(store_dir: str | None, config_file: str, project: str | None, seed: int | None) -> None:
        """Check a sweep file and start a sweep; prints its id."""
        from runstack.sweeps import sweep as make

        sweep_id = make(config_file, project=project, dir=store_dir, seed=seed)
        console.print(Text(f"created sweep {sweep_id}; run trials with: runstack agent {sweep_id}"))

    @sweep.command("ls")
    @dir_option
    def ls(store_dir: str | None) -> None:
        """Every sweep: state, method, trials by status, best value."""
        from runstack.core.store import Store
        from runstack.sweeps.study import Sweep

        store = Store(store_dir, create=False)
        table = Table("sweep", "project", "state", "method", "metric", "trials", "best", title_justify="left")
        for sweep_id in Sweep.ids(store):
            one = Sweep(store, sweep_id)
            best = one.best(1)
            table.add_row(Text(sweep_id), Text(one.project), one.state, one.config.method,
                          Text(f"{one.config.metric or '-'} ({one.config.goal})"), _counts(one.trials()),
                          f"{best[0]['value']:.4g}" if best else "-")  # fmt: skip
        console.print(table)

    @sweep.command("show")
    @dir_option
    @click.argument("sweep_id")
    @click.option("--top", default=10, show_default=True, help="How many of the best trials to list.")
    def show(store_dir: str | None, sweep_id: str, top: int) -> None:
        """State, trials by status and the best trials with their parameters."""
        one = _open(store_dir, sweep_id)
        trials = one.trials()
        console.print(Text(f"sweep {one.id} ({one.state}), project {one.project}, {one.config.method} search, "
                           f"{one.config.goal} {one.config.metric or '-'}; trials: {_counts(trials)}"))  # fmt: skip
        table = Table("trial", "run", "value", "config", title="best trials", title_justify="left")
        for trial in one.best(top):
            table.add_row(str(trial["number"]), Text(trial["run_id"]), f"{trial['value']:.6g}",
                          Text(str(trial["config"])))  # fmt: skip
        console.print(table)

    @sweep.command("stop")
    @dir_option
    @click.argument("sweep_id")
    def stop(store_dir: str | None, sweep_id: str) -> None:
        """Start no new trial (running ones finish)."""
        _open(store_dir, sweep_id).stop()
        console.print(f"sweep {sweep_id} stopped: running trials finish, no new trial starts")

    @sweep.command("resume")
    @dir_option
    @click.argument("sweep_id")
    def resume(store_dir: str | None, sweep_id: str) -> None:
        """Let agents start trials again."""
        _open(store_dir, sweep_id).resume()
        console.print(f"sweep {sweep_id} resumed")

    @main.command("agent")
    @dir_option
    @click.argument("sweep_id")
    @click.option("--count", type=int, default=None, help="At most this many trials from this agent.")
    def agent_command(store_dir: str | None, sweep_id: str, count: int | None) -> None:
        """Run trials of a sweep (its command, with the parameters as arguments)."""
        from runstack.sweeps import agent

        ran = agent(sweep_id, count=count, dir=store_dir)
        console.print(f"agent: ran {ran} trial(s) of sweep {sweep_id}")


def _counts(trials: list[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for trial in trials:
        counts[trial["status"]] = counts.get(trial["status"], 0) + 1
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "none"
