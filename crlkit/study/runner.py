"""The study driver: a grid's runs as Ray Tune trials, results into ``DIR/study.sqlite``.

    grid -> runs (run_id = hash of the canonical config) -> skip the done ones -> Ray Tune
      -> each trial: crlkit.train.train (resume from its checkpoint) -> metrics -> tune.report
      -> driver callback: one transaction per finished run

Local Ray by default (started and stopped here, loopback only, no dashboard); ``address``
joins an existing cluster (``ray start --head`` on one machine, ``ray start --address`` on the
others; run directories must be on a file system all nodes share for a retried run to resume).
Resources per trial: ``threads`` CPUs (torch uses that many threads) and, with
``device="cuda"``, ``gpus_per_run`` of a GPU so several runs share one device.

Seam for the grouped GPU path (``crlkit.train.grouped.train_many``): :func:`_trial` trains one
run; a trial that trains a group of runs of one architecture would take a list of run_ids,
call ``train_many`` and report one result per run. On the CPU, single runs measure best.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from crlkit.errors import CrlkitError
from crlkit.study.grid import Grid, check_contracts, load_grid
from crlkit.study.store import Store

RUNS_DIR = "runs"


def _git_commit() -> str | None:
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _trial(config: dict, *, runs: dict, study_dir: str, device: str, threads: int, udr: bool,
           allow_mismatch: bool = False) -> None:
    """One Ray Tune trial: one run, trained (or resumed) and scored, reported once."""
    import base64

    from ray import tune

    from crlkit.study.execute import execute_run

    run_id = config["run_id"]
    res = execute_run(runs[run_id], Path(study_dir) / RUNS_DIR / run_id, device=device, threads=threads, udr=udr,
                      allow_mismatch=allow_mismatch)
    codes = res.pop("codes", None)
    if codes is not None:  # bytes travel as text through Tune's result dict
        res["codes"] = {"n": int(codes["mean"].shape[0]), "d": int(codes["mean"].shape[1]),
                        "mean": base64.b64encode(codes["mean"].tobytes()).decode(),
                        "kl": base64.b64encode(codes["kl"].tobytes()).decode()}
    tune.report({"crlkit": json.dumps(res)})


def _decode(result: dict) -> dict:
    import base64

    import numpy as np

    res = json.loads(result["crlkit"])
    c = res.get("codes")
    if c is not None:
        res["codes"] = {"mean": np.frombuffer(base64.b64decode(c["mean"]), dtype=np.float32).reshape(c["n"], c["d"]),
                        "kl": np.frombuffer(base64.b64decode(c["kl"]), dtype=np.float32)}
    return res


def _store_callback(store_dir: Path, runs: dict, total: int, log: Callable[[str], None], commit: str | None,
                    contracts: dict | None = None):
    from ray.tune import Callback

    from crlkit import __version__

    class StoreCallback(Callback):
        """Runs in the driver: the only writer of the store (its connection is opened in the
        driver and never pickled with the Tuner's state)."""

        def __init__(self):
            self.finished = 0
            self._store = None

        def __getstate__(self):
            return {**self.__dict__, "_store": None}

        @property
        def store(self) -> Store:
            if self._store is None:
                self._store = Store(store_dir)
            return self._store

        def on_trial_start(self, iteration, trials, trial, **info):
            self.store.mark_started(trial.config["run_id"])

        def on_trial_result(self, iteration, trials, trial, result, **info):
            if "crlkit" not in result:
                return
            run_id = trial.config["run_id"]
            res = _decode(result)
            self.store.record(run_id, runs[run_id], res, status="done", attempts=trial.num_failures + 1,
                         version=__version__, commit=commit, contract=(contracts or {}).get(run_id))
            self.finished += 1
            m = res["metrics"]
            shown = ", ".join(f"{k} {m[k]:.3f}" for k in list(m)[:3])
            log(f"[{self.finished}/{total}] done {run_id} {runs[run_id]['model']} {runs[run_id]['params']} "
                f"seed {runs[run_id]['seed']}: {shown} ({res['train_seconds']:.1f} s train)")

        def on_trial_error(self, iteration, trials, trial, **info):
            run_id = trial.config["run_id"]
            err = "trial failed"
            path = getattr(trial, "error_file", None)
            if path and os.path.exists(path):
                lines = [ln for ln in Path(path).read_text().strip().splitlines() if ln.strip()]
                err = lines[-1] if lines else err
            self.store.record(run_id, runs[run_id], {}, status="failed", error=err[:2000],
                         attempts=trial.num_failures, version=__version__, commit=commit,
                         contract=(contracts or {}).get(run_id))
            self.finished += 1
            log(f"[{self.finished}/{total}] FAILED {run_id} {runs[run_id]['model']} {runs[run_id]['params']} "
                f"seed {runs[run_id]['seed']}: {err[:300]}")

    return StoreCallback()


def run(grid: str | Path | dict | Grid, out: str | Path, *, seeds: list[int] | None = None,
        steps: int | None = None, address: str | None = None, max_concurrent: int | None = None,
        device: str = "cpu", threads: int = 1, gpus_per_run: float | None = None, num_cpus: int | None = None,
        max_failures: int = 2, log: Callable[[str], None] | None = None, allow_mismatch: bool = False) -> dict:
    """Run (or continue) a study: train every run of ``grid`` not yet done into ``out``.

    Parameters
    ----------
    grid : preset name (``locatello``, ``locatello_weak``, ``identify``), YAML path, dict or Grid.
    out : the study directory (``out/study.sqlite``, ``out/runs/<run_id>``, ``out/tune``).
    seeds, steps : replace the grid's seeds / training steps.
    address : ``HOST:PORT`` of a running Ray cluster; ``None`` starts a local one (and stops it).
    max_concurrent : at most this many trials at once (default: as many as the resources allow).
    device : ``cpu`` or ``cuda`` (trials ask for ``gpus_per_run`` of a GPU, default 1/4).
    threads : CPUs (torch threads) per trial.
    num_cpus : CPUs of the local Ray (default: all of this machine's).
    max_failures : retries of a trial whose worker dies (each resumes from the run's checkpoint).
    allow_mismatch : train runs whose dataset breaks an assumption of the method's contract.
        Every run's contract is checked before anything is created or trained
        (:func:`crlkit.study.grid.check_contracts`): a violated requirement raises one
        :class:`CrlkitError` naming the run unless ``allow_mismatch`` (a structural one always);
        the guarantee of each (model, dataset) pair is logged, and each run's check is stored.

    Returns ``{"planned", "done_before", "trained", "failed", "seconds"}``.
    """
    log = log or (lambda s: print(s, flush=True))
    g = load_grid(grid, seeds=seeds, steps=steps)
    if device not in ("cpu", "cuda") and not str(device).startswith("cuda:"):
        raise CrlkitError(f"unknown device {device!r}; valid choices: cpu, cuda")
    if int(threads) < 1:
        raise CrlkitError(f"threads must be >= 1; got {threads}")
    if max_concurrent is not None and int(max_concurrent) < 1:
        raise CrlkitError(f"max_concurrent must be >= 1; got {max_concurrent}")
    all_runs = g.runs()
    contracts, lines = check_contracts(g, allow_mismatch=allow_mismatch, runs=all_runs)
    for line in lines:
        log(line)
    out = Path(out).resolve()
    by_id = {r.run_id: r.config for r in all_runs}
    store = Store(out)
    t0 = time.perf_counter()
    try:
        store.plan(all_runs)
        store.clear_inflight()  # a killed driver's in-flight runs are not running any more
        store.set_meta(grid_name=g.name, grid=g.spec, cross_run_metrics=g.cross_run_metrics,
                       current_runs=[r.run_id for r in all_runs])
        done = store.done_ids()
        todo = [r.run_id for r in all_runs if r.run_id not in done]
        log(f"study {out}: {len(all_runs)} runs in the grid, {len(all_runs) - len(todo)} done, {len(todo)} to train")
        summary = {"planned": len(all_runs), "done_before": len(all_runs) - len(todo), "trained": 0, "failed": 0}
        if todo:
            _tune(todo, by_id, out, store, address=address, max_concurrent=max_concurrent, device=device,
                  threads=int(threads), gpus_per_run=gpus_per_run, num_cpus=num_cpus, max_failures=max_failures,
                  udr=bool(g.cross_run_metrics), log=log, allow_mismatch=bool(allow_mismatch),
                  contracts=contracts)
            status = store.status_of()
            summary["trained"] = sum(status.get(r) == "done" for r in todo)
            summary["failed"] = sum(status.get(r) == "failed" for r in todo)
        summary["seconds"] = time.perf_counter() - t0
        return summary
    finally:
        store.close()


def _tune(todo, by_id, out: Path, store: Store, *, address, max_concurrent, device, threads, gpus_per_run,
          num_cpus, max_failures, udr, log, allow_mismatch=False, contracts=None) -> None:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # results live in the store
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_MAX_PENDING_TRIALS_PG", str(max(1, len(todo))))
    import logging

    import ray
    from ray import tune

    # Tune looks for its own result files, which the store replaces; Ray warns about the token
    # of a cluster that listens on the loopback only
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    started = False
    if not ray.is_initialized():
        env = {}
        if os.environ.get("PYTHONPATH"):
            env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        env["OMP_NUM_THREADS"] = str(threads)
        if address:
            try:
                ray.init(address=address, runtime_env={"env_vars": env}, logging_level=logging.WARNING,
                         log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise CrlkitError(f"--address {address}: cannot join a Ray cluster there ({e})") from None
        else:
            ray.init(address="local", num_cpus=num_cpus or os.cpu_count(), include_dashboard=False,
                     _node_ip_address="127.0.0.1", runtime_env={"env_vars": env}, logging_level=logging.WARNING,
                     log_to_driver=False)
        started = True
    try:
        resources = {"cpu": threads}
        if str(device).startswith("cuda"):
            resources["gpu"] = 0.25 if gpus_per_run is None else float(gpus_per_run)
            device = "cuda"  # Ray sets CUDA_VISIBLE_DEVICES to the trial's GPU: it is cuda:0 there
        trainable = tune.with_resources(
            tune.with_parameters(_trial, runs={r: by_id[r] for r in todo}, study_dir=str(out),
                                 device=device, threads=threads, udr=udr, allow_mismatch=allow_mismatch),
            resources)
        callback = _store_callback(out, by_id, len(todo), log, _git_commit(), contracts)
        tuner = tune.Tuner(
            trainable,
            param_space={"run_id": tune.grid_search(list(todo))},
            tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent, reuse_actors=True,
                                        trial_dirname_creator=lambda t: t.config["run_id"],
                                        trial_name_creator=lambda t: t.config["run_id"]),
            run_config=tune.RunConfig(name=f"tune_{int(time.time())}", storage_path=str(out / "tune"),
                                      failure_config=tune.FailureConfig(max_failures=max_failures),
                                      callbacks=[callback],
                                      verbose=0),
        )
        try:
            tuner.fit()
        finally:
            if callback._store is not None:
                callback._store.close()
    finally:
        store.clear_inflight()
        if started:
            ray.shutdown()
    sys.stdout.flush()
