"""Analysis of a study (works on partial ones): the runs as a table, variance shares,
rank correlations between metrics, unsupervised model selection against a random pick, and
Locatello et al.'s findings restated from the data. Every quoted number has a bootstrap
95% confidence interval (runs resampled with replacement within their method, or within
their method x hyperparameter cell for variance shares).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from crlkit.study.store import Store

#: supervised scores (higher is better) in the order the report shows them.
SUPERVISED = ("beta_vae", "factor_vae", "mig", "dci_disentanglement", "dci_completeness", "dci_informativeness",
              "sap", "modularity", "explicitness", "irs", "mcc", "mcc_spearman", "r2_linear", "r2_nonlinear")
#: label-free scores and their sign (+1: higher is better, -1: lower is better).
UNSUPERVISED = {"udr": 1, "gaussian_total_correlation": -1, "gaussian_wasserstein_correlation": -1,
                "gaussian_wasserstein_correlation_norm": -1, "mutual_info": -1}
#: the four metrics Locatello et al. found to agree (finding 2).
AGREEING = ("beta_vae", "factor_vae", "mig", "dci_disentanglement")
N_BOOT = 1000

# Locatello et al. (2019)'s findings, as shared/REFERENCES.md words them (the paper's, not ours).
PAPER = {
    "variance": "Every method's scores vary more across random seeds and hyperparameters than across "
                "methods: a good run of a bad method often beats a bad run of a good method.",
    "agreement": "BetaVAE score, FactorVAE score, MIG and DCI disentanglement rank models alike (high Spearman "
                 "correlation); Modularity much less; SAP in between.",
    "selection": "No unsupervised score picks good models much better than chance.",
}


# --------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------
def load(directory, *, udr: bool = True) -> pd.DataFrame:
    """One row per recorded run: ``run_id``, ``model``, ``seed``, ``status``, ``dataset``,
    ``steps``, ``setting`` (the hyperparameters as text), ``mismatch`` and ``contract`` (the run's
    assumption contract, JSON), one column per hyperparameter, one
    per metric (and ``udr`` where the study saved codes), timings. ``df.attrs`` holds
    ``hyperparameters``, ``metrics`` and ``planned`` (the runs of the latest grid asked for)."""
    with Store(directory, create=False) as store:
        rows = store.rows()
        codes = store.codes() if udr else {}
        planned = len(store.current())
    records, hps, metrics = [], [], []
    for r in rows:
        params = json.loads(r["params"] or "{}")
        scores = json.loads(r["metrics"] or "{}")
        rec = {k: r[k] for k in ("run_id", "kind", "model", "seed", "status", "dataset", "steps", "train_seconds",
                                 "eval_seconds", "attempts", "error", "crlkit_version", "git_commit")}
        rec["mismatch"] = r.get("mismatch")
        rec["contract"] = r.get("contract")
        rec["setting"] = ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(params.items())) or "-"
        for k, v in params.items():
            rec[k] = v
            hps.append(k)
        for k, v in scores.items():
            rec[k] = v
            metrics.append(k)
        rec["_params"] = r["params"]
        records.append(rec)
    df = pd.DataFrame.from_records(records)
    if df.empty:
        df = pd.DataFrame(columns=["run_id", "model", "seed", "status", "setting"])
    hps = list(dict.fromkeys(hps))
    metrics = [m for m in dict.fromkeys(metrics) if m != "final_loss"] + (["final_loss"] if "final_loss" in metrics else [])
    if codes and not df.empty:
        df["udr"] = _udr_column(df, codes)
        metrics.append("udr")
    df = df.drop(columns=["_params"], errors="ignore")
    df.attrs.update(hyperparameters=hps, metrics=metrics, planned=planned)
    return df


def _fmt(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _udr_column(df: pd.DataFrame, codes: dict) -> np.ndarray:
    from crlkit.metrics.udr import udr_scores

    out = np.full(len(df), np.nan)
    done = df[(df["status"] == "done") & df["run_id"].isin(codes)]
    for _, group in done.groupby(["model", "_params", "dataset", "steps"]):
        ids = list(group["run_id"])
        scores = udr_scores([codes[i][0] for i in ids], kl=[codes[i][1] for i in ids])
        out[group.index.to_numpy()] = scores
    return out


def done_runs(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["status"] == "done"].reset_index(drop=True) if "status" in df else df


def metrics_of(df: pd.DataFrame, which: str = "all") -> list[str]:
    ms = [m for m in df.attrs.get("metrics", []) if m in df and df[m].notna().any()]
    if which == "supervised":
        return [m for m in SUPERVISED if m in ms]
    if which == "unsupervised":
        return [m for m in UNSUPERVISED if m in ms]
    return ms


# --------------------------------------------------------------------------------------
# Bootstrap
# --------------------------------------------------------------------------------------
def bootstrap(df: pd.DataFrame, stat: Callable[[np.ndarray], float], *, strata: list[str] | None = None,
              n_boot: int = N_BOOT, seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
    """``(stat(all rows), lo, hi)``: a percentile bootstrap interval. ``stat`` takes an array of
    row positions of ``df``; rows are resampled with replacement within each stratum (the groups
    of the ``strata`` columns)."""
    est = float(stat(np.arange(len(df))))
    rng = np.random.default_rng(seed)
    groups = ([np.asarray(ix) for ix in df.reset_index(drop=True).groupby(strata).indices.values()] if strata
              else [np.arange(len(df))])
    vals = []
    for _ in range(n_boot):
        idx = np.concatenate([g[rng.integers(0, len(g), size=len(g))] for g in groups])
        v = stat(idx)
        if np.isfinite(v):
            vals.append(v)
    if not vals:
        return est, float("nan"), float("nan")
    a = (1 - level) / 2
    return est, float(np.quantile(vals, a)), float(np.quantile(vals, 1 - a))


def _codes(df: pd.DataFrame, cols: list[str]) -> np.ndarray:
    return df.reset_index(drop=True).groupby(cols, sort=True).ngroup().to_numpy()


def ci_text(t: tuple[float, float, float], pct: bool = False) -> str:
    f = (lambda x: f"{100 * x:.0f}%") if pct else (lambda x: f"{x:.2f}")
    if not np.isfinite(t[1]):
        return f"{f(t[0])}"
    return f"{f(t[0])} (95% CI {f(t[1])} to {f(t[2])})"


# --------------------------------------------------------------------------------------
# Variance shares (finding 1)
# --------------------------------------------------------------------------------------
def _shares(y: np.ndarray, method: np.ndarray, cell: np.ndarray) -> dict[str, float]:
    nan = {"method": np.nan, "hyperparameter": np.nan, "seed": np.nan}
    if len(y) < 2:
        return nan
    total = float(np.sum((y - y.mean()) ** 2))
    if total <= 0:
        return nan
    m_mean = (np.bincount(method, weights=y) / np.maximum(np.bincount(method), 1))[method]
    c_mean = (np.bincount(cell, weights=y) / np.maximum(np.bincount(cell), 1))[cell]
    return {"method": float(np.sum((m_mean - y.mean()) ** 2)) / total,
            "hyperparameter": float(np.sum((c_mean - m_mean) ** 2)) / total,
            "seed": float(np.sum((y - c_mean) ** 2)) / total}


def variance_shares(df: pd.DataFrame, metric: str) -> dict[str, float]:
    """Shares of the metric's sum of squares: between methods, between hyperparameter
    settings within a method, and between seeds within a setting (they sum to 1)."""
    d = df[["model", "setting", metric]].dropna().reset_index(drop=True)
    return _shares(d[metric].to_numpy(dtype=float), _codes(d, ["model"]), _codes(d, ["model", "setting"]))


def variance_table(df: pd.DataFrame, metrics: list[str], *, n_boot: int = N_BOOT) -> list[dict]:
    rows = []
    for m in metrics:
        d = done_runs(df)[["model", "setting", m]].dropna().reset_index(drop=True)
        y, mc, cc = d[m].to_numpy(dtype=float), _codes(d, ["model"]), _codes(d, ["model", "setting"])
        row = {"metric": m, "runs": len(d)}
        for part in ("method", "hyperparameter", "seed"):
            row[part] = bootstrap(d, lambda i, p=part: _shares(y[i], mc[i], cc[i])[p], strata=["model", "setting"],
                                  n_boot=n_boot)
        row["seed + hyperparameter"] = bootstrap(
            d, lambda i: 1.0 - _shares(y[i], mc[i], cc[i])["method"], strata=["model", "setting"], n_boot=n_boot)
        rows.append(row)
    return rows


def good_run_of_bad_method(df: pd.DataFrame, metric: str) -> float:
    """Over pairs of methods (A with the lower mean, B with the higher), the share where A's
    best run beats B's worst."""
    d = df[["model", metric]].dropna()
    stats = d.groupby("model")[metric].agg(["mean", "max", "min"])
    if len(stats) < 2:
        return float("nan")
    hits, pairs = 0, 0
    for a in stats.index:
        for b in stats.index:
            if stats.loc[a, "mean"] < stats.loc[b, "mean"]:
                pairs += 1
                hits += stats.loc[a, "max"] > stats.loc[b, "min"]
    return hits / pairs if pairs else float("nan")


# --------------------------------------------------------------------------------------
# Rank correlations between metrics (finding 2)
# --------------------------------------------------------------------------------------
def spearman_matrix(df: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    return done_runs(df)[metrics].astype(float).corr(method="spearman")


def _pairwise_spearman(x: np.ndarray, pairs: list[tuple[int, int]]) -> float:
    from scipy.stats import rankdata

    r = np.apply_along_axis(rankdata, 0, x)
    r = r - r.mean(0)
    sd = np.sqrt((r ** 2).sum(0))
    vals = [float((r[:, a] * r[:, b]).sum() / (sd[a] * sd[b])) for a, b in pairs if sd[a] > 0 and sd[b] > 0]
    return float(np.mean(vals)) if vals else float("nan")


def mean_pairwise_spearman(df: pd.DataFrame, a: list[str], b: list[str] | None = None, *, n_boot: int = 0):
    """Mean Spearman correlation over pairs within ``a`` (or between ``a`` and ``b``); with
    ``n_boot``, ``(estimate, lo, hi)`` from resampling runs within their method."""
    cols = list(dict.fromkeys(a + (b or [])))
    d = df[["model", *cols]].dropna().reset_index(drop=True)
    x = d[cols].to_numpy(dtype=float)
    ix = {c: k for k, c in enumerate(cols)}
    pairs = ([(ix[p], ix[q]) for k, p in enumerate(a) for q in a[k + 1:]] if b is None
             else [(ix[p], ix[q]) for p in a for q in b if p != q])
    if not n_boot:
        return _pairwise_spearman(x, pairs)
    return bootstrap(d, lambda i: _pairwise_spearman(x[i], pairs), strata=["model"], n_boot=n_boot)


# --------------------------------------------------------------------------------------
# Unsupervised model selection (finding 4)
# --------------------------------------------------------------------------------------
def _selection(score: np.ndarray, target: np.ndarray, method: np.ndarray) -> float:
    vals = []
    for m in np.unique(method):
        sel = method == m
        if sel.sum() < 2:
            continue
        t, u = target[sel], score[sel]
        tied = t[u == u.max()]  # a tie on the score is broken at random: average over the tied runs
        vals.append(float(np.mean([(b > t) + 0.5 * (b == t) for b in tied])))
    return float(np.mean(vals)) if vals else float("nan")


def selection_beats_random(df: pd.DataFrame, score: str, target: str, *, n_boot: int = 0):
    """Within each method, pick the run with the best label-free ``score``; the probability
    that its ``target`` beats the target of a run picked at random from the same method (ties
    count half; chance is 0.5), averaged over methods. With ``n_boot``, ``(estimate, lo, hi)``."""
    d = df[["model", score, target]].dropna().reset_index(drop=True)
    u = UNSUPERVISED.get(score, 1) * d[score].to_numpy(dtype=float)
    t = d[target].to_numpy(dtype=float)
    mc = _codes(d, ["model"])
    if not n_boot:
        return _selection(u, t, mc)
    return bootstrap(d, lambda i: _selection(u[i], t[i], mc[i]), strata=["model"], n_boot=n_boot)


def selection_table(df: pd.DataFrame, *, n_boot: int = N_BOOT) -> list[dict]:
    d = done_runs(df)
    return [{"score": u, "target": s, "p": selection_beats_random(d, u, s, n_boot=n_boot)}
            for u in metrics_of(d, "unsupervised") for s in metrics_of(d, "supervised")]


# --------------------------------------------------------------------------------------
# Identifiable methods: MCC against chance
# --------------------------------------------------------------------------------------
def identify_table(df: pd.DataFrame, *, n_boot: int = N_BOOT) -> list[dict]:
    d = done_runs(df)
    if "mcc" not in d or "baseline_mcc" not in d:
        return []
    rows = []
    for (model, setting), g in d.groupby(["model", "setting"]):
        g = g.reset_index(drop=True)
        mcc = g["mcc"].to_numpy(dtype=float)
        rows.append({"method": model, "setting": setting, "seeds": len(g),
                     "mcc": bootstrap(g, lambda i: float(mcc[i].mean()), n_boot=n_boot),
                     "chance": float(g["baseline_mcc"].mean()),
                     "above_chance": int((g["mcc"] > g["baseline_mcc"]).sum())})
    return rows


#: what the theory guarantees each method of an identify grid (docs/identify.md).
THEORY = {
    "ivae": "Khemakhem et al. (2020): with an auxiliary variable (>= 2n+1 segments) the latents are identified up "
            "to permutation and per-latent affine maps, so MCC should sit well above the chance level.",
    "iflow": "Li, Hooi & Lee (2020): the iVAE model fitted by its exact likelihood; identified as iVAE.",
    "contrastive": "Zimmermann et al. (2021): Laplace positive pairs with an L1 similarity identify the latents up "
                   "to a signed permutation, so MCC should sit well above the chance level.",
    "content_style": "von Kügelgen et al. (2021): the content block is identified (block-identifiability).",
    "vae": "Locatello et al. (2019): from i.i.d. data alone nothing is identified (a rotation-invariant prior); "
           "no guarantee above the chance level.",
    "beta_vae": "Locatello et al. (2019): from i.i.d. data alone nothing is identified; no guarantee above the "
                "chance level.",
}


def identify_findings(d: pd.DataFrame, *, n_boot: int = N_BOOT) -> list[dict]:
    """Per method of an identify grid: its MCC across settings and seeds against the chance level."""
    out = []
    for model, g in d.groupby("model"):
        g = g.reset_index(drop=True)
        if "mcc" not in g or "baseline_mcc" not in g:
            continue
        gap = (g["mcc"] - g["baseline_mcc"]).to_numpy(dtype=float)
        t = bootstrap(g, lambda i: float(gap[i].mean()), n_boot=n_boot)
        above = int((gap > 0).sum())
        identifiable = model in ("ivae", "iflow", "contrastive", "content_style")
        if not np.isfinite(t[1]):
            ok = None
        elif identifiable:
            ok = True if t[1] > 0 else (False if t[2] <= 0 else None)
        else:
            ok = True if t[1] <= 0.05 else False
        settings = ", ".join(sorted(set(g["setting"])))
        out.append({"topic": f"{model}: recovered latents against chance",
                    "ours": f"Over {len(g)} runs ({settings}), {model}'s MCC exceeds the random-rotation chance level "
                            f"by {ci_text(t)} on average (mean MCC {g['mcc'].mean():.2f}, chance "
                            f"{g['baseline_mcc'].mean():.2f}); {above} of {len(g)} runs are above chance.",
                    "paper": THEORY.get(model, "(no guarantee recorded)"), "verdict": _verdict(ok),
                    "rule": ("agrees when the interval of the mean gap to chance lies above 0" if identifiable else
                             "agrees when the interval's lower bound is at most 0.05 (no reliable gain over chance)")})
    return out


# --------------------------------------------------------------------------------------
# Findings, as sentences generated from the numbers
# --------------------------------------------------------------------------------------
def _sentence(parts: list[str]) -> str:
    text = "; ".join(parts)
    return text[:1].upper() + text[1:] + "."


def _verdict(ok: bool | None) -> str:
    return {True: "agrees", False: "disagrees", None: "inconclusive"}[ok]


def findings(df: pd.DataFrame, *, n_boot: int = N_BOOT) -> list[dict]:
    """Each of Locatello et al.'s findings that this study can test: ``{"topic", "ours",
    "paper", "verdict", "rule"}``. ``ours`` is written from the data only."""
    d = done_runs(df)
    if len(d) and "kind" in d and (d["kind"] == "identify").all():
        return identify_findings(d, n_boot=n_boot)
    out = []
    sup = [m for m in metrics_of(d, "supervised") if m not in ("mcc_spearman", "dci_completeness",
                                                                "dci_informativeness", "explicitness")]
    n_methods = d["model"].nunique() if len(d) else 0
    if sup and n_methods >= 2 and len(d) >= 4:
        parts = []
        wins = 0
        decided = 0
        for m in sup[:4]:
            v = variance_table(d, [m], n_boot=n_boot)[0]
            method, rest = v["method"], v["seed + hyperparameter"]
            g = good_run_of_bad_method(d, m)
            parts.append(f"for {m}, the method explains {ci_text(method, pct=True)} of the variance across "
                         f"{v['runs']} runs and seeds plus hyperparameters {ci_text(rest, pct=True)}; in "
                         f"{100 * g:.0f}% of method pairs the worse method's best run beats the better method's worst")
            if np.isfinite(rest[1]) and np.isfinite(method[2]):
                if rest[1] > method[2]:
                    wins, decided = wins + 1, decided + 1
                elif method[1] > rest[2]:
                    decided += 1
        ok = None if decided == 0 else (wins > decided / 2)
        out.append({"topic": "Seeds and hyperparameters against the method",
                    "ours": _sentence(parts), "paper": PAPER["variance"], "verdict": _verdict(ok),
                    "rule": "agrees when, for most metrics whose intervals separate, the lower bound of the "
                            "seed + hyperparameter share exceeds the upper bound of the method share"})
    agree = [m for m in AGREEING if m in sup]
    if len(agree) >= 2 and len(d) >= 4:
        t = mean_pairwise_spearman(d, agree, n_boot=n_boot)
        text = f"The mean Spearman correlation among {', '.join(agree)} is {ci_text(t)} over {len(d)} runs"
        ok = None if not np.isfinite(t[1]) else t[1] > 0.5 if t[0] > 0.5 else (False if t[2] < 0.5 else None)
        if "modularity" in d and d["modularity"].notna().any():
            tm = mean_pairwise_spearman(d, ["modularity"], agree, n_boot=n_boot)
            text += f"; modularity's mean correlation with them is {ci_text(tm)}"
            if ok and np.isfinite(tm[2]):
                ok = tm[0] < t[0]
        out.append({"topic": "Do the metrics agree?", "ours": text + ".", "paper": PAPER["agreement"],
                    "verdict": _verdict(ok),
                    "rule": "agrees when the interval of the mean correlation lies above 0.5 (and modularity's "
                            "mean correlation is lower); disagrees when it lies below 0.5"})
    sel = selection_table(d, n_boot=n_boot) if sup else []
    if sel:
        parts, los = [], []
        for u in dict.fromkeys(r["score"] for r in sel):
            rs = [r for r in sel if r["score"] == u and r["target"] in sup]
            mean_p = float(np.mean([r["p"][0] for r in rs]))
            lo = float(np.mean([r["p"][1] for r in rs]))
            hi = float(np.mean([r["p"][2] for r in rs]))
            los.append(lo)
            parts.append(f"selecting within each method by {u} beats a random pick with probability "
                         f"{mean_p:.2f} (mean over {len(rs)} supervised metrics; mean 95% CI {lo:.2f} to {hi:.2f})")
        ok = bool(all(np.isfinite(los))) and min(los) < 0.6 if los else None
        out.append({"topic": "Unsupervised model selection", "ours": _sentence(parts + ["chance is 0.50"]), "paper": PAPER["selection"], "verdict": _verdict(ok),
                    "rule": "agrees when, for at least one label-free score, the interval's lower bound is "
                            "below 0.6 (selection not reliably better than chance)"})
    return out
