"""``crlkit study``: run a grid of trainings on Ray Tune into a results store, and read it.

    crlkit study run --grid locatello --out studies/loc --seeds 0 1 2 --steps 30000
    crlkit study status studies/loc
    crlkit study export studies/loc --out runs.csv
    crlkit study report studies/loc
"""

from __future__ import annotations

import time

from crlkit.commands._options import (HelpFormatter, add_device, add_out, add_steps, add_threads, examples,
                                      float_range, int_range)
from crlkit.errors import CrlkitError


def register(sub) -> None:
    p = sub.add_parser("study", help="studies at scale: a grid of runs on Ray Tune, a SQLite store, a report",
                       description="Train every run of a grid (a preset or a YAML file) as a Ray Tune trial, "
                                   "record each finished run in DIR/study.sqlite, and analyse the study.",
                       formatter_class=HelpFormatter,
                       epilog=examples("crlkit study run --grid my_grid.yaml --out studies/mini",
                                       "crlkit study report studies/mini"))
    ss = p.add_subparsers(dest="study_command", metavar="SUBCOMMAND")

    r = ss.add_parser("run", help="train the grid's runs not yet done (idempotent; resumes unfinished runs)",
                      description="Train every run of the grid that DIR's store does not hold as done: on a local "
                                  "Ray started and stopped here, or on the cluster at --address. Re-running the "
                                  "same command trains nothing that is done; a larger grid adds only its new runs.",
                      formatter_class=HelpFormatter,
                      epilog=examples("crlkit study run --grid locatello --out studies/loc --seeds 0 1 --steps 30000",
                                      "crlkit study run --grid my_grid.yaml --out studies/mini --max-concurrent 2",
                                      "crlkit study run --grid identify --out studies/id --steps 2000 --seeds 0 1",
                                      "crlkit study run --grid locatello --out studies/loc --address 10.0.0.1:6379 "
                                      "--device cuda"))
    r.add_argument("--grid", required=True, metavar="PRESET|FILE",
                   help="a preset (locatello, locatello_weak, identify) or a YAML grid file")
    add_out(r, help="study directory (DIR/study.sqlite, DIR/runs/<run_id>, DIR/report)")
    r.add_argument("--seeds", nargs="+", type=int_range(0), default=None, metavar="S",
                   help="seeds of every setting, replacing the grid's (integers >= 0)")
    add_steps(r, help="training steps of every run, replacing the grid's")
    r.add_argument("--address", default=None, metavar="HOST:PORT",
                   help="join the Ray cluster there (default: start a local Ray on this machine and stop it after)")
    r.add_argument("--max-concurrent", type=int_range(1), default=None, metavar="N",
                   help="at most N runs at once (default: as many as the CPUs / GPUs allow)")
    add_device(r)
    add_threads(r, help="CPU threads (torch threads and Ray CPUs) per run")
    r.add_argument("--gpus-per-run", type=float_range(0, 1, lo_open=True), default=None, metavar="F",
                   help="share of a GPU per run with --device cuda (default 0.25: four runs per GPU)")
    r.add_argument("--max-failures", type=int_range(0), default=2, metavar="N",
                   help="retries of a run whose worker dies, each from its last checkpoint (default 2)")
    r.add_argument("--allow-mismatch", action="store_true",
                   help="train runs whose dataset breaks an assumption of the method's contract (checked for "
                        "every run before anything trains); the mismatch is kept in the store")
    r.set_defaults(func=_run)

    s = ss.add_parser("status", help="done / running / failed runs and the time left",
                      formatter_class=HelpFormatter,
                      epilog=examples("crlkit study status studies/mini"))
    s.add_argument("dir", help="study directory")
    s.set_defaults(func=_status)

    e = ss.add_parser("export", help="one row per run as CSV or Parquet",
                      description="Write one row per recorded run: run_id, model, seed, status, one column per "
                                  "hyperparameter, one per metric score (and UDR), the run's contract "
                                  "mismatch (empty when the guarantee applies) and its contract check (JSON).",
                      formatter_class=HelpFormatter,
                      epilog=examples("crlkit study export studies/mini --out runs.csv",
                                      "crlkit study export studies/mini --out runs.parquet"))
    e.add_argument("dir", help="study directory")
    add_out(e, help="output file: .csv, or .parquet (needs pyarrow)")
    e.set_defaults(func=_export)

    rp = ss.add_parser("report", help="write DIR/report/index.html (works on a partial study)",
                       formatter_class=HelpFormatter,
                       epilog=examples("crlkit study report studies/mini"))
    rp.add_argument("dir", help="study directory")
    rp.add_argument("--bootstrap", type=int_range(10), default=1000, metavar="N",
                    help="bootstrap resamples behind every interval (default 1000)")
    rp.set_defaults(func=_report)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _run(args) -> int:
    from crlkit.study.runner import run

    res = run(args.grid, args.out, seeds=args.seeds, steps=args.steps, address=args.address,
              max_concurrent=args.max_concurrent, device=args.device, threads=args.threads,
              gpus_per_run=args.gpus_per_run, max_failures=args.max_failures, allow_mismatch=args.allow_mismatch)
    print(f"{res['planned']} runs in the grid: {res['done_before']} were done, {res['trained']} trained now, "
          f"{res['failed']} failed ({res['seconds']:.1f} s); store {args.out}/study.sqlite")
    return 1 if res["failed"] else 0


def _status(args) -> int:
    from crlkit.study.store import Store

    with Store(args.dir, create=False) as store:
        planned = store.current()
        status = store.status_of()
        inflight = store.inflight()
        rows = store.rows()
    done = [r for r in rows if r["status"] == "done" and r["run_id"] in planned]
    failed = [r for r in rows if r["status"] == "failed" and r["run_id"] in planned]
    running = [r for r in inflight if status.get(r) != "done"]
    pending = [r for r in planned if status.get(r) != "done" and r not in inflight]
    print(f"{args.dir}: {len(planned)} runs planned: {len(done)} done, {len(running)} running, "
          f"{len(failed)} failed, {len(pending) - len(failed)} not started")
    if done:
        per_run = sum(r["train_seconds"] + (r["eval_seconds"] or 0) for r in done) / len(done)
        left = len(planned) - len(done)
        print(f"mean {per_run:.1f} s per run (train + score); about {left * per_run / 60:.1f} min of one "
              f"worker's time left ({left} runs)")
    for run_id, started in sorted(inflight.items(), key=lambda kv: kv[1]):
        cfg = planned.get(run_id, {})
        print(f"  running {run_id} {cfg.get('model')} {cfg.get('params')} seed {cfg.get('seed')} "
              f"for {time.time() - started:.0f} s")
    for r in failed:
        print(f"  failed {r['run_id']} {r['model']} {r['params']} seed {r['seed']}: {r['error']}")
    return 0


def _export(args) -> int:
    from crlkit.files import atomic_save
    from crlkit.study.analysis import load

    df = load(args.dir)
    cols = (["run_id", "model", "seed", "status", "dataset", "steps"] + df.attrs.get("hyperparameters", [])
            + df.attrs.get("metrics", []) + ["train_seconds", "eval_seconds", "attempts", "crlkit_version",
                                               "git_commit", "error", "mismatch", "contract"])
    df = df[[c for c in dict.fromkeys(cols) if c in df]]
    out = str(args.out)
    if out.endswith(".parquet"):
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise CrlkitError("--out *.parquet needs the pyarrow package (pip install pyarrow); "
                              "or write --out runs.csv") from None
        atomic_save(out, lambda tmp: df.to_parquet(tmp, index=False))
    elif out.endswith(".csv"):
        atomic_save(out, lambda tmp: df.to_csv(tmp, index=False))
    else:
        raise CrlkitError(f"--out must end in .csv or .parquet; got {out!r}")
    print(f"wrote {out} ({len(df)} runs, {len(df.columns)} columns)")
    return 0


def _report(args) -> int:
    from crlkit.study.report import write_report

    path = write_report(args.dir, n_boot=args.bootstrap)
    print(f"wrote {path}")
    return 0
