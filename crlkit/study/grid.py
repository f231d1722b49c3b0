"""Study grids: presets and YAML files, validated before anything trains, expanded into runs.

A grid file (YAML) holds, at least::

    dataset: dsprites
    data_set: {}                  # dataset options
    steps: 300000
    set: {batch_size: 64}         # training options for every run
    models:
      beta_vae: {beta: [1, 2, 4, 6, 8, 16]}
      factor_vae: {gamma: [10, 20, 30, 40, 50, 100]}
    seeds: [0, 1, 2]
    metrics: [mig, dci, sap, factor_vae, beta_vae, udr]
    evaluation: {n_train: 10000, n_test: 5000}

``kind: identify`` grids train identifiable methods on ``synthetic`` settings
(:func:`crlkit.identify.benchmark.make_setting`); their model entries list setting fields
(``latents``, ``mixing_layers``, ``segments``, ``batch_size``, ``lr``) and they are scored with
the identifiability scores (MCC and R², each with its random-rotation chance level).

Each run is the cartesian product of one model's hyperparameter lists and a seed. Its
``run_id`` is a hash of its canonical configuration (sorted-key JSON), so the same run gets
the same id in any grid that contains it.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crlkit.errors import CrlkitError
from crlkit.registry import unknown_choice

KINDS = ("train", "identify")
GRID_KEYS = ("kind", "dataset", "data_set", "steps", "set", "models", "seeds", "metrics", "evaluation")
EVALUATION_KEYS = {"n_train": int, "n_test": int, "seed": int, "udr_samples": int, "eval_samples": int}
#: the metric computed across runs (from each run's codes of shared inputs), not per run.
CROSS_RUN_METRICS = ("udr",)
#: setting fields an identify grid may vary (keywords of make_setting).
IDENTIFY_KEYS = {"latents": int, "segments": int, "mixing_layers": int, "batch_size": int, "lr": float,
                 "conditional": str}
#: methods an identify grid can run (the interventional method reads a graph with restarts:
#: run it with ``crlkit identify``).
IDENTIFY_METHODS = ("ivae", "iflow", "contrastive", "content_style", "vae", "beta_vae")

_LOCATELLO_METRICS = ["mig", "dci", "sap", "modularity_explicitness", "factor_vae", "beta_vae", "unsupervised", "udr"]

#: Locatello et al. (2019), shared/REFERENCES.md: six methods x six values; 300,000 steps, batch 64.
PRESETS: dict[str, dict[str, Any]] = {
    "locatello": {
        "kind": "train", "dataset": "dsprites", "data_set": {}, "steps": 300000, "set": {"batch_size": 64},
        "models": {
            "beta_vae": {"beta": [1, 2, 4, 6, 8, 16]},
            "annealed_vae": {"c_max": [5, 10, 25, 50, 75, 100]},
            "factor_vae": {"gamma": [10, 20, 30, 40, 50, 100]},
            "dip_vae_i": {"lambda_od": [1, 2, 5, 10, 20, 50]},
            "dip_vae_ii": {"lambda_od": [1, 2, 5, 10, 20, 50]},
            "beta_tcvae": {"beta": [1, 2, 4, 6, 8, 10]},
        },
        "seeds": [0, 1, 2], "metrics": _LOCATELLO_METRICS,
        "evaluation": {"n_train": 10000, "n_test": 5000},
    },
    # Locatello et al. (2020): Ada-GVAE / Ada-ML-VAE on pairs sharing all factors but k.
    "locatello_weak": {
        "kind": "train", "dataset": "dsprites", "data_set": {}, "steps": 300000, "set": {"batch_size": 64},
        "models": {"ada_gvae": {"beta": [1, 2, 4, 6, 8, 16]}, "ada_mlvae": {"beta": [1, 2, 4, 6, 8, 16]}},
        "seeds": [0, 1, 2], "metrics": _LOCATELLO_METRICS,
        "evaluation": {"n_train": 10000, "n_test": 5000},
    },
    # Identifiable methods against their baselines; steps None: each method's own default
    # (make_setting's table), --steps sets one budget for all.
    "identify": {
        "kind": "identify", "dataset": "synthetic", "data_set": {}, "steps": None, "set": {},
        "models": {
            "ivae": {"latents": [3, 5], "mixing_layers": [1, 3]},
            "contrastive": {"latents": [3, 5], "mixing_layers": [1, 3]},
            "vae": {"latents": [3, 5], "mixing_layers": [1, 3]},
            "beta_vae": {"latents": [3, 5], "mixing_layers": [1, 3]},
        },
        "seeds": [0, 1, 2], "metrics": ["mcc", "r2_linear", "r2_nonlinear"],
        "evaluation": {"eval_samples": 5000},
    },
}


@dataclass(frozen=True)
class Run:
    """One run of a study: its canonical config and the id hashed from it."""

    run_id: str
    config: dict = field(hash=False, compare=False)

    @property
    def model(self) -> str:
        return self.config["model"]

    @property
    def seed(self) -> int:
        return int(self.config["seed"])

    @property
    def params(self) -> dict:
        return self.config["params"]


def run_id_of(config: dict) -> str:
    """``sha256`` of the sorted-key JSON of ``config`` (first 16 hex digits)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Grid:
    """A validated grid; :meth:`runs` expands it."""

    name: str
    spec: dict

    def runs(self) -> list[Run]:
        s = self.spec
        out = []
        for model, table in s["models"].items():
            keys = sorted(table)
            for values in itertools.product(*(table[k] for k in keys)):
                for seed in s["seeds"]:
                    cfg = {"kind": s["kind"], "model": model, "params": dict(zip(keys, values)), "seed": int(seed),
                           "dataset": s["dataset"], "data_set": s["data_set"], "steps": s["steps"],
                           "set": s["set"], "metrics": [m for m in s["metrics"] if m not in CROSS_RUN_METRICS],
                           "evaluation": s["evaluation"]}
                    if s["kind"] == "identify":
                        cfg.pop("set")
                    out.append(Run(run_id_of(cfg), copy.deepcopy(cfg)))
        return out

    @property
    def cross_run_metrics(self) -> list[str]:
        return [m for m in self.spec["metrics"] if m in CROSS_RUN_METRICS]


def load_grid(grid: str | Path | dict | Grid, *, seeds: list[int] | None = None, steps: int | None = None) -> Grid:
    """A preset name, a YAML file or a dict -> a validated :class:`Grid` (``seeds`` / ``steps``
    replace the grid's). Any problem raises one :class:`CrlkitError` naming the field."""
    if isinstance(grid, Grid):
        name, spec = grid.name, copy.deepcopy(grid.spec)
    elif isinstance(grid, dict):
        name, spec = "custom", copy.deepcopy(grid)
    elif str(grid) in PRESETS:
        name, spec = str(grid), copy.deepcopy(PRESETS[str(grid)])
    else:
        path = Path(grid)
        if not path.is_file():
            raise CrlkitError(unknown_choice("grid (a preset name or a YAML file)", str(grid), PRESETS))
        import yaml

        try:
            spec = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            raise CrlkitError(f"grid {path}: not valid YAML ({str(e).splitlines()[0]})") from None
        if not isinstance(spec, dict):
            raise CrlkitError(f"grid {path}: expected a mapping with keys {', '.join(GRID_KEYS)}")
        name = path.stem
    if seeds is not None:
        spec["seeds"] = list(seeds)
    if steps is not None:
        spec["steps"] = int(steps)
    return Grid(name, validate(spec))


def _as_list(value, where: str) -> list:
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, (int, float, str, bool)):
        return [value]
    raise CrlkitError(f"grid {where}: expected a list of values; got {value!r}")


def _mapping(spec: dict, key: str) -> dict:
    value = spec.get(key) or {}
    if not isinstance(value, dict):
        raise CrlkitError(f"grid {key}: expected a mapping; got {value!r}")
    return dict(value)


def validate(spec: dict) -> dict:
    """Check every field of a grid spec and return it normalised (values coerced to the types
    the models' configs declare). Nothing is trained or built."""
    for key in spec:
        if key not in GRID_KEYS:
            raise CrlkitError(unknown_choice("grid key", key, GRID_KEYS))
    kind = spec.get("kind", "train")
    if kind not in KINDS:
        raise CrlkitError(unknown_choice("grid kind", kind, KINDS))
    out: dict[str, Any] = {"kind": kind}
    out["dataset"] = str(spec.get("dataset", "synthetic" if kind == "identify" else "dsprites"))
    out["data_set"] = _mapping(spec, "data_set")
    out["set"] = _mapping(spec, "set")
    out["evaluation"] = _mapping(spec, "evaluation")
    steps = spec.get("steps")
    if steps is None and kind == "train":
        raise CrlkitError("grid steps: missing (training steps of every run)")
    if steps is not None:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise CrlkitError(f"grid steps: expected an integer >= 1; got {steps!r}")
    out["steps"] = steps
    seeds = _as_list(spec.get("seeds", [0]), "seeds")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise CrlkitError(f"grid seeds: expected integers >= 0; got {s!r}")
    if not seeds:
        raise CrlkitError("grid seeds: empty grid (no seeds)")
    out["seeds"] = sorted(set(seeds))
    for key, value in out["evaluation"].items():
        if key not in EVALUATION_KEYS:
            raise CrlkitError(unknown_choice("grid evaluation key", key, EVALUATION_KEYS))
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise CrlkitError(f"grid evaluation.{key}: expected an integer >= 1; got {value!r}")
    models = spec.get("models")
    if not models:
        raise CrlkitError("grid models: empty grid (no models)")
    if not isinstance(models, dict):
        raise CrlkitError(f"grid models: expected a mapping of model name to hyperparameter lists; got {models!r}")
    out["models"] = {}
    if kind == "train":
        _validate_train(out, models)
    else:
        _validate_identify(out, models)
    metrics = _as_list(spec.get("metrics", []), "metrics")
    if not metrics:
        raise CrlkitError("grid metrics: empty (name at least one metric)")
    if kind == "train":
        from crlkit.metrics.evaluate import METRIC_NAMES

        valid = tuple(METRIC_NAMES) + CROSS_RUN_METRICS
    else:
        valid = ("mcc", "r2_linear", "r2_nonlinear")
    for m in metrics:
        if m not in valid:
            raise CrlkitError(unknown_choice("grid metric", m, valid))
    out["metrics"] = list(dict.fromkeys(metrics))
    return out


def _values(table, where: str) -> dict[str, list]:
    if table is None:
        table = {}
    if not isinstance(table, dict):
        raise CrlkitError(f"grid {where}: expected a mapping of hyperparameter to values; got {table!r}")
    out = {}
    for key, values in table.items():
        vals = _as_list(values, f"{where}.{key}")
        if not vals:
            raise CrlkitError(f"grid {where}.{key}: empty grid (no values)")
        out[str(key)] = vals
    return out


def _validate_train(out: dict, models: dict) -> None:
    from crlkit.config import coerce, signature_fields
    from crlkit.data import DATASETS, list_datasets
    from crlkit.data import _load_all as _load_datasets
    from crlkit.models import list_models
    from crlkit.train import resolve_settings

    _load_datasets()
    if out["dataset"] not in list_datasets():
        raise CrlkitError(unknown_choice("grid dataset", out["dataset"], list_datasets()))
    table = signature_fields(DATASETS.get(out["dataset"]))
    for key, value in out["data_set"].items():
        if key not in table:
            raise CrlkitError(unknown_choice(f"grid data_set key (dataset {out['dataset']!r})", key, table))
        try:
            out["data_set"][key] = coerce(value, table[key], key=key)
        except CrlkitError as e:
            raise CrlkitError(f"grid data_set.{key}: {e}") from None
    known = list_models()
    for model, table in models.items():
        if model not in known:
            raise CrlkitError(unknown_choice("grid model (models.*)", model, known))
        try:
            resolve_settings(model, out["set"])
        except CrlkitError as e:
            raise CrlkitError(f"grid set (for {model}): {e}") from None
        values = _values(table, f"models.{model}")
        coerced: dict[str, list] = {k: [] for k in values}
        for key, vals in values.items():
            if key in out["set"]:
                raise CrlkitError(f"grid models.{model}.{key}: also fixed in set; give it in one place")
            for v in vals:
                try:
                    _, mcfg, tcfg, sopts = resolve_settings(model, {**out["set"], key: v})
                except CrlkitError as e:
                    raise CrlkitError(f"grid models.{model}.{key}: {e}") from None
                coerced[key].append(_coerced_value(key, v, mcfg, tcfg, sopts))
        out["models"][model] = coerced


def _coerced_value(key: str, raw, model_cfg, train_cfg, sampler_opts):
    bare = key.partition(".")[2] if "." in key else key
    for holder in (model_cfg, train_cfg):
        if hasattr(holder, bare):
            v = getattr(holder, bare)
            return list(v) if isinstance(v, tuple) else v
    return sampler_opts.get(bare, raw)


def _validate_identify(out: dict, models: dict) -> None:
    from crlkit.config import coerce

    if out["dataset"] != "synthetic":
        raise CrlkitError(f"grid dataset: an identify grid trains on 'synthetic' settings; got {out['dataset']!r}")
    if out["data_set"] or out["set"]:
        raise CrlkitError("grid data_set / set: an identify grid takes its settings from models.<method>.<field> "
                          f"({', '.join(IDENTIFY_KEYS)})")
    for model, table in models.items():
        if model not in IDENTIFY_METHODS:
            raise CrlkitError(unknown_choice("grid model (models.*) for an identify grid", model, IDENTIFY_METHODS))
        values = _values(table, f"models.{model}")
        coerced = {}
        for key, vals in values.items():
            if key not in IDENTIFY_KEYS:
                raise CrlkitError(unknown_choice(f"grid key models.{model}.*", key, IDENTIFY_KEYS))
            try:
                coerced[key] = [coerce(v, IDENTIFY_KEYS[key], key=key) for v in vals]
            except CrlkitError as e:
                raise CrlkitError(f"grid models.{model}.{key}: {e}") from None
        out["models"][model] = coerced


def check_contracts(grid: Grid, *, allow_mismatch: bool = False, runs: list[Run] | None = None
                    ) -> tuple[dict[str, dict], list[str]]:
    """Every run's assumption contract (:func:`crlkit.contracts.enforce`), before anything trains.

    Returns ``(contracts, lines)``: the check's dict per ``run_id`` and one line per (model,
    dataset) pair (:func:`crlkit.contracts.contract_line`; a pair whose runs differ shows its
    first mismatch, with how many of its runs it concerns). A failed structural requirement, or
    a failed assumption unless ``allow_mismatch``, raises one :class:`CrlkitError` naming the run
    (model, settings, seed) and the requirement.
    """
    from crlkit.contracts import contract_line, enforce
    from crlkit.data import dataset_from_options
    from crlkit.train import resolve_settings

    datasets: dict[str, Any] = {}
    contracts: dict[str, dict] = {}
    pairs: dict[tuple, list[dict]] = {}
    for run in grid.runs() if runs is None else runs:
        c = run.config
        if c["kind"] == "identify":
            from crlkit.identify.benchmark import make_setting, train_overrides

            setting = make_setting(c["model"], seed=c["seed"], steps=c["steps"], **c["params"])
            data, overrides = setting.data, train_overrides(setting)
        else:
            data, overrides = c["data_set"], {**c["set"], **c["params"]}
        key = json.dumps([c["dataset"], data], sort_keys=True, default=str)
        if key not in datasets:
            datasets[key] = dataset_from_options(c["dataset"], data)[0]
        _, model_cfg, _, sampler_opts = resolve_settings(c["model"], overrides)
        try:
            d = enforce(c["model"], datasets[key], model_config=model_cfg, sampler_options=sampler_opts,
                        allow_mismatch=allow_mismatch)
        except CrlkitError as e:
            setting = ", ".join(f"{k}={v}" for k, v in sorted(c["params"].items())) or "defaults"
            raise CrlkitError(f"grid run {run.run_id} (models.{c['model']}: {setting}; seed {c['seed']}): "
                              f"{e}") from None
        contracts[run.run_id] = d
        pairs.setdefault((c["model"], c["dataset"]), []).append(d)
    lines = []
    for ds in pairs.values():
        bad = [d for d in ds if d.get("mismatches")]
        line = contract_line(bad[0] if bad else ds[0])
        if bad and len(bad) < len(ds):
            line += f" ({len(bad)} of {len(ds)} runs)"
        lines.append(line)
    return contracts, lines


def mismatch_text(contract: dict | None) -> str:
    """``"requirement: reason"`` of a check's first failed assumption; ``""`` when none."""
    ms = (contract or {}).get("mismatches") or []
    return f"{ms[0]['requirement']}: {ms[0]['reason']}" if ms else ""
