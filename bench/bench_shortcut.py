"""Shortcut methods under honest model selection: 5 seeds x methods x selection rules (issue 23).

Two settings, each a :class:`crlkit.robust.ShortcutConfig` (CPU scale: 16x16 images):

- ``main``: training environments rho 0.99 / 0.91 (mean 0.95), shape_noise 0.1; ERM, GroupDRO,
  JTT, DFR, causal.
- ``irm``: the IRM paper's ColoredMNIST set-up transposed: environments 0.9 / 0.8, the animal's
  shape agrees with the label 75% of the time in every split (shape_noise = test_shape_noise =
  0.25), reversed test at 0.1; ERM and IRM.

Every (setting, seed) runs in its own single-threaded process (``--workers`` at a time); every
method searches its grid with validation checkpoints, and every selection rule (worst_group,
worst_class, average, oracle) picks its model. Results go to ``--json`` (default
bench/results/shortcut.json), rewritten after every job, and the markdown tables of
bench/RESULTS_shortcut.md are rendered from that file:

    python bench/bench_shortcut.py --seeds 2 3 4 5 6 --irm-seeds 2 3 4 --workers 2
    python bench/bench_shortcut.py --render bench/results/shortcut.json     # tables only

JSON schema: ``{"command", "machine", "wall_seconds", "tuning_seeds", "settings": {name: {config,
methods}}, "rows": [row, ...]}``; a row is one (setting, method, selection, seed): ``worst_group``
(test_ood worst-group accuracy), ``average`` (accuracy on test_id, the training distribution: the
papers' training-weighted average), ``mean_group``, ``reversed_accuracy`` (at the setting's
test_rho), ``ood_accuracy``, ``background_flip_rate``, ``selected`` ({params, step}),
``validation`` ({worst_group, worst_class, average}), ``labels`` ({method, selection}),
``candidates``, ``seconds``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SCALE = dict(image_size=16, n_train=3000, n_val=1000, n_test=1000, steps=300, batch_size=128, evals=5)
SETTINGS = {
    "main": {"config": dict(rho=0.95, env_spread=0.04, shape_noise=0.1, **SCALE),
             "methods": ["erm", "groupdro", "jtt", "dfr", "causal"]},
    "irm": {"config": dict(rhos=(0.9, 0.8), test_rho=0.1, shape_noise=0.25, test_shape_noise=0.25, **SCALE),
            "methods": ["erm", "irm"]},
}
TUNING_SEEDS = (0, 1)
RULES = ("worst_group", "worst_class", "average", "oracle")


def _job(job):
    setting, seed = job
    import torch

    torch.set_num_threads(1)
    from crlkit.robust import ShortcutConfig, make_shortcut_data, run_search

    spec = SETTINGS[setting]
    cfg = ShortcutConfig(**spec["config"])
    data = make_shortcut_data(cfg, seed)
    rows = []
    for method in spec["methods"]:
        t0 = time.perf_counter()
        res = run_search(method, data, seed, rules=RULES)
        for rule, r in res.items():
            rows.append({"setting": setting, "method": method, "selection": rule, "seed": seed,
                         "worst_group": r["worst_group_accuracy"], "average": r["id_accuracy"],
                         "mean_group": r["mean_group_accuracy"], "reversed_accuracy": r["reversed_accuracy"],
                         "ood_accuracy": r["ood_accuracy"], "background_flip_rate": r["background_flip_rate"],
                         "selected": r["selected"], "validation": r["validation"], "labels": r["labels"],
                         "candidates": r["candidates"], "seconds": time.perf_counter() - t0})
        print(f"{setting} seed {seed} {method}: " + ", ".join(
            f"{rule} wg {res[rule]['worst_group_accuracy']:.3f} rev {res[rule]['reversed_accuracy']:.3f}"
            for rule in RULES) + f" ({time.perf_counter() - t0:.0f} s)", flush=True)
    return rows


# --- rendering (the RESULTS tables come from the JSON, never typed in) -------------------------
def _stats(vals):
    import numpy as np

    return float(np.mean(vals)), float(np.std(vals)), float(np.min(vals))


def render_markdown(doc: dict) -> str:
    """Markdown tables and target checks of a results document (see the module docstring)."""
    rows = doc["rows"]
    out = []
    for setting, spec in doc["settings"].items():
        sr = [r for r in rows if r["setting"] == setting]
        if not sr:
            continue
        seeds = sorted({r["seed"] for r in sr})
        out.append(f"### Setting `{setting}`: {json.dumps(spec['config'])}; seeds {seeds}\n")
        out.append("| method | selection | worst-group mean ± std | min | per seed | average (test_id) | "
                   "reversed | flip rate | selected step (per seed) |")
        out.append("|---|---|---|---|---|---|---|---|---|")
        for m in spec["methods"]:
            for rule in RULES:
                rr = sorted((r for r in sr if r["method"] == m and r["selection"] == rule), key=lambda r: r["seed"])
                if not rr:
                    continue
                wg = _stats([r["worst_group"] for r in rr])
                label = rule + (" (upper bound)" if rule == "oracle" else "")
                out.append(f"| {m} | {label} | {wg[0]:.3f} ± {wg[1]:.3f} | {wg[2]:.3f} | "
                           + " ".join(f"{r['worst_group']:.2f}" for r in rr)
                           + f" | {_stats([r['average'] for r in rr])[0]:.3f} | "
                           f"{_stats([r['reversed_accuracy'] for r in rr])[0]:.3f} | "
                           f"{_stats([r['background_flip_rate'] for r in rr])[0]:.3f} | "
                           + " ".join(str(r["selected"]["step"]) for r in rr) + " |")
        out.append("")
    out.append("### Targets (worst_group selection unless said; oracle never counts)\n")
    out.extend(f"- {line}" for line in targets(rows))
    return "\n".join(out) + "\n"


def targets(rows: list[dict]) -> list[str]:
    def pick(setting, method, rule="worst_group"):
        return sorted((r for r in rows if r["setting"] == setting and r["method"] == method
                       and r["selection"] == rule), key=lambda r: r["seed"])

    def line(name, rr, key, ok, bound):
        if not rr:
            return f"{name}: not run"
        vals = [r[key] for r in rr]
        good = all(ok(v) for v in vals)
        return (f"{name} {key} {bound}: " + " ".join(f"{v:.3f}" for v in vals)
                + (" — PASS" if good else " — FAIL") + f" ({len(vals)} seeds)")

    out = [line("main/erm", pick("main", "erm"), "worst_group", lambda v: v <= 0.30, "<= 0.30")]
    for m in ("groupdro", "dfr", "causal"):
        out.append(line(f"main/{m}", pick("main", m), "worst_group", lambda v: v >= 0.85, ">= 0.85"))
    out.append(line("main/jtt", pick("main", "jtt"), "worst_group", lambda v: v >= 0.80, ">= 0.80"))
    out.append(line("irm/irm", pick("irm", "irm"), "reversed_accuracy", lambda v: v >= 0.60, ">= 0.60"))
    out.append(line("irm/irm", pick("irm", "irm"), "average", lambda v: v >= 0.60, "(in-distribution) >= 0.60"))
    out.append(line("irm/erm", pick("irm", "erm"), "reversed_accuracy", lambda v: v <= 0.30, "<= 0.30"))
    out.append(line("irm/irm under oracle selection (upper bound)", pick("irm", "irm", "oracle"),
                    "reversed_accuracy", lambda v: v >= 0.60, ">= 0.60"))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="*", default=[2, 3, 4, 5, 6], help="seeds of the main setting")
    p.add_argument("--irm-seeds", type=int, nargs="*", default=[2, 3, 4], help="seeds of the IRM setting")
    p.add_argument("--workers", type=int, default=2, help="processes at a time (each single-threaded)")
    p.add_argument("--json", default="bench/results/shortcut.json", help="results file (rewritten after each job)")
    p.add_argument("--render", metavar="JSON", help="only print the markdown tables of an existing results file")
    args = p.parse_args(argv)
    if args.render:
        print(render_markdown(json.loads(Path(args.render).read_text())))
        return 0
    if set(args.seeds) & set(TUNING_SEEDS) or set(args.irm_seeds) & set(TUNING_SEEDS):
        print(f"note: seeds {TUNING_SEEDS} were used to tune the search spaces; report other seeds", flush=True)
    jobs = [("main", s) for s in args.seeds] + [("irm", s) for s in args.irm_seeds]
    jobs.sort(key=lambda j: args.seeds.index(j[1]) if j[0] == "main" else
              args.irm_seeds.index(j[1]) + 0.5)  # interleaved, so that a cut-short run has both settings
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"command": "python bench/bench_shortcut.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs (shared), "
                      "1 torch thread per process", "wall_seconds": None, "tuning_seeds": list(TUNING_SEEDS),
           "settings": {k: {"config": {**v["config"], "rhos": list(v["config"].get("rhos", ()))},
                            "methods": v["methods"]} for k, v in SETTINGS.items()},
           "rows": []}
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers) as ex:
        for fut in as_completed([ex.submit(_job, j) for j in jobs]):
            doc["rows"].extend(fut.result())
            doc["wall_seconds"] = time.perf_counter() - t0
            path.write_text(json.dumps(doc, indent=1) + "\n")  # partial results survive a kill
    print(render_markdown(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
