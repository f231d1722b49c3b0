"""Robust classification methods, registered by name: erm, groupdro, irm, jtt, dfr, causal.

Every method is a small class with a frozen ``Config`` (one comment per field), a ``grid`` (its
paper's hyperparameter search space, cut to what a CPU affords), the labels it ``uses``, and
``candidates(data, seed, config) -> [Candidate]``: one training run's checkpoints, each
evaluated on the validation split. :meth:`RobustMethod.search` runs the grid; the rules of
:mod:`crlkit.robust.selection` pick one candidate. Options given to :func:`make_method` fix
those hyperparameters (the grid then runs over the rest). No method reads a test split: the
splits are sealed while they train (:class:`~crlkit.robust.experiment.TestSplitSealed`).
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import warnings
from typing import Callable, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from crlkit.config import build_config
from crlkit.errors import CrlkitError
from crlkit.registry import Registry
from crlkit.robust.classifier import (LinearOnFeatures, SmallCNN, epoch_batches, eval_steps, extract_features,
                                      group_balanced_weights, predict_logits, train_steps, weighted_batches)
from crlkit.robust.measures import accuracy_score, worst_class_accuracy, worst_group_accuracy

METHODS: Registry = Registry("method")


def register_method(name: str):
    def _add(cls):
        cls.name = name
        return METHODS.register(name, cls)
    return _add


def make_method(name: str, **options) -> "RobustMethod":
    """The method registered as ``name``; ``options`` fix fields of its ``Config`` (validated and
    coerced; an unknown key names the valid ones)."""
    cls = METHODS.get(name)
    fixed = dataclasses.asdict(build_config(cls.Config, options, what=f"method {name!r}"))  # validated, coerced
    for key in options:
        check_range(name, key, fixed[key])
    return cls({k: fixed[k] for k in options})


# valid ranges of the methods' options: (low, high, low end open)
_RANGES = {"lr": (0.0, None, True), "erm_lr": (0.0, None, True), "weight_decay": (0.0, None, False),
           "step_size": (0.0, None, False), "penalty_weight": (0.0, None, False),
           "anneal_fraction": (0.0, 1.0, False), "first_fraction": (0.0, 1.0, True), "upweight": (1.0, None, False),
           "C": (0.0, None, True), "subsets": (1, None, False), "batch_size": (2, None, False),
           "latent_dim": (1, None, False), "temperature": (0.0, None, True)}


def check_range(method: str, key: str, value) -> None:
    """Raise CrlkitError naming the option and its valid range when ``value`` is outside it."""
    import math

    if key not in _RANGES or isinstance(value, bool):
        return
    lo, hi, lo_open = _RANGES[key]
    ok = math.isfinite(float(value)) and (value > lo if lo_open else value >= lo) and (hi is None or value <= hi)
    if not ok:
        rng = f"{'(' if lo_open else '['}{lo}, {'inf)' if hi is None else f'{hi}]'}"
        raise CrlkitError(f"{method} option {key} must be in {rng}; got {value!r}")


def list_methods() -> list[str]:
    return METHODS.names()


def seeded_model(seed: int, **kwargs) -> SmallCNN:
    """A SmallCNN whose initial weights depend only on ``seed`` (the global RNG is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return SmallCNN(**kwargs)


def _gen(seed: int, stream: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(np.random.SeedSequence([int(seed), stream]).generate_state(1)[0]))


def _bce(logits, y, reduction="mean"):
    return F.binary_cross_entropy_with_logits(logits, y, reduction=reduction)


# --- candidates and their validation scores -----------------------------------------------
def validation_scores(logits: torch.Tensor, split) -> dict:
    """The scores the selection rules read, on one labelled split: ``worst_group`` (over
    (label, background) groups: needs group labels), ``worst_class`` and ``average``
    (accuracy on the split, i.e. weighted by the training distribution's group frequencies)."""
    y = split.y.long().cpu().numpy()
    pred = (logits > 0).long().cpu().numpy()
    bg = split.factors[:, 3]
    return {"worst_group": worst_group_accuracy(y, pred, bg), "worst_class": worst_class_accuracy(y, pred),
            "average": accuracy_score(y, pred)}


@dataclasses.dataclass
class Candidate:
    """One model a selection rule may pick: a run's hyperparameters, its step, its validation
    scores, and the predictor (built on first use by ``build`` when that is costly)."""

    params: dict
    step: int
    val: dict
    build: Callable[[], nn.Module]
    _model: nn.Module | None = None

    def model(self) -> nn.Module:
        if self._model is None:
            self._model = self.build()
        return self._model


def snapshot(model: nn.Module) -> nn.Module:
    """A frozen copy of ``model`` in eval mode."""
    m = copy.deepcopy(model).eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return m


class RobustMethod:
    name: ClassVar[str] = ""
    Config: ClassVar[type]
    grid: ClassVar[dict | list] = {}  # field -> values searched (a product), or a list of points (the
                                      # paper's space, cut for the CPU)
    uses: ClassVar[str] = ""       # which annotations it needs beyond the images

    def __init__(self, fixed: dict | None = None):
        self.fixed = dict(fixed or {})

    def configs(self) -> list:
        """Every configuration of the search over the fields not fixed: the product of ``grid``
        when it is a dict of value lists, or its points when it is a list of dicts."""
        points = self.grid if isinstance(self.grid, list) else [
            dict(zip(self.grid, values)) for values in itertools.product(*self.grid.values())]
        out = []
        for point in points:
            cfg = self.Config(**{**{k: v for k, v in point.items() if k not in self.fixed}, **self.fixed})
            if cfg not in out:
                out.append(cfg)
        return out

    def search(self, data, *, seed: int, log: Callable[[str], None] | None = None) -> list[Candidate]:
        """Every candidate of every configuration (tests stay sealed)."""
        out = []
        configs = self.configs()
        for i, cfg in enumerate(configs):
            if log is not None:
                log(f"{self.name} {i + 1}/{len(configs)}: {_short(dataclasses.asdict(cfg))}")
            out.extend(self.candidates(data, seed, cfg))
        return out

    def candidates(self, data, seed: int, config) -> list[Candidate]:
        raise NotImplementedError


def _short(d: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in d.items())


def _record(model: nn.Module, data, params: dict, out: list) -> Callable[[int], None]:
    """A checkpoint hook: score a copy of ``model`` on the validation split, keep it as a candidate."""
    def on_checkpoint(step: int) -> None:
        m = snapshot(model)
        out.append(Candidate(dict(params), step, validation_scores(predict_logits(m, data.val.x), data.val),
                             lambda m=m: m, m))
    return on_checkpoint


# --- ERM ----------------------------------------------------------------------------------
def erm_run(data, seed: int, *, lr: float, weight_decay: float = 0.0) -> list[tuple[int, nn.Module]]:
    """ERM's checkpoints ``[(step, frozen model)]`` (cached on ``data``: JTT and DFR start from it)."""
    cfg = data.config

    def build():
        tr = data.train
        model = seeded_model(seed, width=cfg.width).to(tr.x.device)
        batches = epoch_batches(len(tr), cfg.batch_size, _gen(seed, 1))
        snaps: list = []

        def loss(step):
            idx = next(batches).to(tr.x.device)
            return _bce(model(tr.x[idx]), tr.y[idx])

        train_steps(model, loss, steps=cfg.steps, lr=lr, weight_decay=weight_decay,
                    checkpoints=eval_steps(cfg.steps, cfg.evals),
                    on_checkpoint=lambda s: snaps.append((s, snapshot(model))))
        return snaps

    return data.cached(("erm", seed, cfg.steps, cfg.evals, float(lr), float(weight_decay)), build)


@dataclasses.dataclass(frozen=True)
class ERMConfig:
    lr: float = 1e-3            # Adam learning rate
    weight_decay: float = 0.0   # L2 penalty (Adam, coupled)


@register_method("erm")
class ERM(RobustMethod):
    """Empirical risk minimisation: the baseline that learns the shortcut."""

    Config = ERMConfig
    grid = {"lr": (1e-3, 3e-3), "weight_decay": (0.0,)}
    uses = "labels"

    def candidates(self, data, seed, config):
        params = dataclasses.asdict(config)
        return [Candidate(params, s, validation_scores(predict_logits(m, data.val.x), data.val), lambda m=m: m, m)
                for s, m in erm_run(data, seed, lr=config.lr, weight_decay=config.weight_decay)]


# --- GroupDRO -----------------------------------------------------------------------------
def groupdro_update(q: torch.Tensor, group_loss: torch.Tensor, present: torch.Tensor, step_size: float
                    ) -> torch.Tensor:
    """One exponentiated-gradient step on the group weights (Sagawa et al. 2020, Algorithm 1):
    ``q_g <- q_g exp(step_size * loss_g)`` for the groups ``present`` in the batch, then
    renormalised to sum to 1. Absent groups keep their unnormalised weight."""
    q = q * torch.exp(step_size * group_loss.detach() * present.to(group_loss.dtype))
    return q / q.sum()


@dataclasses.dataclass(frozen=True)
class GroupDROConfig:
    step_size: float = 0.01     # eta_q of the exponentiated-gradient update of the group weights q
    weight_decay: float = 1e-3  # the strong L2 GroupDRO needs (Sagawa et al. 2020)


@register_method("groupdro")
class GroupDRO(RobustMethod):
    """Group DRO (Sagawa et al. 2020): minimise ``sum_g q_g L_g`` with ``q_g ∝ q_g exp(eta_q L_g)``
    over the (label, background) groups, on group-balanced batches ("reweight_groups"), with
    strong L2."""

    Config = GroupDROConfig
    grid = [{"step_size": 0.01, "weight_decay": 1e-3}, {"step_size": 0.1, "weight_decay": 1e-2}]
    uses = "labels + group labels (label x background) on the training set"

    def candidates(self, data, seed, config):
        cfg, tr = data.config, data.train
        dev = tr.x.device
        model = seeded_model(seed, width=cfg.width).to(dev)
        groups = tr.label_group
        batches = weighted_batches(group_balanced_weights(groups.cpu()), cfg.batch_size, _gen(seed, 2))
        q = torch.full((4,), 0.25, device=dev)

        def loss(step):
            nonlocal q
            idx = next(batches).to(dev)
            per = _bce(model(tr.x[idx]), tr.y[idx], reduction="none")
            onehot = F.one_hot(groups[idx], 4).float()                            # (B, 4)
            counts = onehot.sum(0)
            group_loss = (onehot * per[:, None]).sum(0) / counts.clamp(min=1)   # (4,)
            q = groupdro_update(q, group_loss, counts > 0, config.step_size)
            return (q * group_loss).sum()

        out: list = []
        train_steps(model, loss, steps=cfg.steps, lr=cfg.lr, weight_decay=config.weight_decay,
                    checkpoints=eval_steps(cfg.steps, cfg.evals),
                    on_checkpoint=_record(model, data, dataclasses.asdict(config), out))
        return out


# --- IRM ----------------------------------------------------------------------------------
def irmv1_risk_and_penalty(logits: torch.Tensor, y: torch.Tensor, *, split: bool = False
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """One environment's risk ``R(w) = BCE(w * logits, y)`` at ``w = 1`` and the IRMv1 penalty
    ``(dR/dw |_{w=1})^2`` (differentiable: the graph is kept for the outer gradient).

    ``split=True``: the unbiased minibatch estimate of Arjovsky et al. (2019, appendix), the
    product of the gradients on the two halves of the batch; the plain square of a minibatch
    gradient adds the gradient's sampling variance to the penalty."""
    scale = torch.ones((), device=logits.device, requires_grad=True)
    if split and len(y) >= 2:
        h = len(y) // 2
        g1 = torch.autograd.grad(_bce(logits[:h] * scale, y[:h]), scale, create_graph=True)[0]
        g2 = torch.autograd.grad(_bce(logits[h:2 * h] * scale, y[h:2 * h]), scale, create_graph=True)[0]
        return _bce(logits, y), g1 * g2
    r = _bce(logits * scale, y)
    grad = torch.autograd.grad(r, scale, create_graph=True)[0]
    return r, grad.pow(2)


@dataclasses.dataclass(frozen=True)
class IRMConfig:
    penalty_weight: float = 1e3     # lambda of the IRMv1 penalty after the anneal
    anneal_fraction: float = 0.2    # share of the steps with lambda = 1 before switching to penalty_weight
    weight_decay: float = 1e-3      # L2 penalty
    batch_size: int = 256           # images per step (the penalty is a squared gradient: small batches bias it)
    split_penalty: bool = False     # unbiased two-half estimate of the penalty (see irmv1_risk_and_penalty)


@register_method("irm")
class IRM(RobustMethod):
    """IRMv1 (Arjovsky et al. 2019): ``mean_e R_e + lambda mean_e (d R_e(w * logits) / dw |_{w=1})^2``
    over the training environments; lambda = 1 during the anneal, then ``penalty_weight`` with the
    loss divided by it (as the reference code does) and Adam restarted (as DomainBed does), so
    moment estimates from the ERM phase do not carry over to the rescaled loss."""

    Config = IRMConfig
    grid = {"penalty_weight": (1e2, 1e4), "anneal_fraction": (0.2, 0.4)}
    uses = "labels + environment index of each training image"

    def candidates(self, data, seed, config):
        cfg, tr, c = data.config, data.train, config
        model = seeded_model(seed, width=cfg.width).to(tr.x.device)
        batches = epoch_batches(len(tr), c.batch_size, _gen(seed, 3))
        envs = tr.env
        n_env = int(envs.max()) + 1
        anneal = int(round(c.anneal_fraction * cfg.steps))

        def loss(step):
            idx = next(batches).to(tr.x.device)
            logits, y, e = model(tr.x[idx]), tr.y[idx], envs[idx]
            risks, penalties = [], []
            for k in range(n_env):
                m = e == k
                if m.sum() == 0:
                    continue
                r, p = irmv1_risk_and_penalty(logits[m], y[m], split=c.split_penalty)
                risks.append(r)
                penalties.append(p)
            lam = 1.0 if step < anneal else c.penalty_weight
            total = torch.stack(risks).mean() + lam * torch.stack(penalties).mean()
            return total / lam if lam > 1.0 else total

        out: list = []
        train_steps(model, loss, steps=cfg.steps, lr=cfg.lr, weight_decay=c.weight_decay,
                    checkpoints=eval_steps(cfg.steps, cfg.evals), reset_optimizer_at=anneal,
                    on_checkpoint=_record(model, data, dataclasses.asdict(config), out))
        return out


# --- JTT ----------------------------------------------------------------------------------
@torch.no_grad()
def jtt_error_set(predictor: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """JTT's error set: a boolean mask of the training examples the identification model gets
    wrong (logit > 0 predicts class 1)."""
    return (predict_logits(predictor, x) > 0).float() != y


@dataclasses.dataclass(frozen=True)
class JTTConfig:
    first_fraction: float = 0.2   # T as a share of the steps: ERM steps of the identification model
    upweight: float = 20.0        # lambda_up: sampling weight of the identification model's errors


@register_method("jtt")
class JTT(RobustMethod):
    """Just Train Twice (Liu et al. 2021): an ERM model trained for T steps marks its training
    errors; a second model is trained with those examples drawn ``upweight`` times as often. The
    identification model is the ERM run's checkpoint nearest T (learning rate ``lr``, no L2)."""

    Config = JTTConfig
    grid = [{"first_fraction": 0.2, "upweight": 20.0}, {"first_fraction": 0.2, "upweight": 100.0},
            {"first_fraction": 0.4, "upweight": 20.0}]
    uses = "labels (no group labels for training)"

    def candidates(self, data, seed, config):
        cfg, tr = data.config, data.train
        snaps = erm_run(data, seed, lr=cfg.lr)
        target = config.first_fraction * cfg.steps
        first_steps, first = min(snaps, key=lambda sm: abs(sm[0] - target))
        wrong = jtt_error_set(first, tr.x, tr.y)
        weights = torch.where(wrong, config.upweight, 1.0).double().cpu()
        model = seeded_model(seed, width=cfg.width).to(tr.x.device)
        batches = weighted_batches(weights, cfg.batch_size, _gen(seed, 5))

        def loss(step):
            idx = next(batches).to(tr.x.device)
            return _bce(model(tr.x[idx]), tr.y[idx])

        params = {**dataclasses.asdict(config), "first_steps": first_steps, "error_set_size": int(wrong.sum())}
        out: list = []
        train_steps(model, loss, steps=cfg.steps, lr=cfg.lr, checkpoints=eval_steps(cfg.steps, cfg.evals),
                    on_checkpoint=_record(model, data, params, out))
        return out


# --- DFR ----------------------------------------------------------------------------------
DFR_C_VALUES = (1.0, 0.7, 0.3, 0.1, 0.07, 0.03, 0.01)  # Kirichenko et al. 2023's list


def balanced_subset(groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices of a group-balanced subsample: as many of each group as the smallest group has."""
    present = np.unique(groups)
    k = min(int(np.sum(groups == g)) for g in present)
    return np.concatenate([rng.choice(np.flatnonzero(groups == g), size=k, replace=False) for g in present])


def _l1_option() -> dict:
    """scikit-learn >= 1.8 spells an L1 penalty ``l1_ratio=1`` (``penalty`` is deprecated there)."""
    import sklearn

    major, minor = (int(p) for p in sklearn.__version__.split(".")[:2])
    return {"l1_ratio": 1.0} if (major, minor) >= (1, 8) else {"penalty": "l1"}


_L1 = _l1_option()


def fit_dfr_head(z: np.ndarray, y: np.ndarray, groups: np.ndarray, *, C: float, subsets: int, seed: int):
    """DFR's last layer: L1 logistic regressions on standardised features of ``subsets``
    group-balanced subsamples, weights averaged. Returns ``(mean, std, coef, intercept)``."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    mean, std = z.mean(0), z.std(0) + 1e-6
    zs = (z - mean) / std
    rng = np.random.default_rng(seed)
    coefs, icpts = [], []
    for _ in range(int(subsets)):
        idx = balanced_subset(groups, rng)
        if len(np.unique(y[idx])) < 2:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            lr = LogisticRegression(C=C, solver="liblinear", max_iter=1000, **_L1).fit(zs[idx], y[idx])
        coefs.append(lr.coef_[0])
        icpts.append(float(lr.intercept_[0]))
    if not coefs:
        return mean, std, np.zeros(z.shape[1]), 0.0
    return mean, std, np.mean(coefs, axis=0), float(np.mean(icpts))


@dataclasses.dataclass(frozen=True)
class DFRConfig:
    C: float = 0.1          # inverse L1 strength of the last-layer logistic regression
    subsets: int = 10       # group-balanced subsamples whose fitted weights are averaged
    erm_lr: float = 1e-3    # learning rate of the ERM model whose features DFR reweights


@register_method("dfr")
class DFR(RobustMethod):
    """Deep Feature Reweighting (Kirichenko et al. 2023, DFR^Val_Tr): train ERM, then refit only
    the last layer on group-balanced subsets of the validation split.

    For each ERM checkpoint and each C, the head is fitted on one half of the validation split
    and scored on the other (those are the candidate's validation scores); the candidate's model
    is the head refitted on the whole validation split with that C, as in the paper."""

    Config = DFRConfig
    grid = {"C": DFR_C_VALUES}
    uses = "labels + group labels on the validation split (the last layer is fitted on it)"

    def search(self, data, *, seed, log=None):
        # one pass over the ERM checkpoints serves every C
        configs = self.configs()
        if log is not None:
            log(f"dfr: {len(configs)} values of C on the checkpoints of ERM (lr={configs[0].erm_lr})")
        val = data.val
        y = val.y.long().cpu().numpy()
        groups = val.label_group.cpu().numpy()
        half = np.random.default_rng([seed, 11]).permutation(len(y))
        a, b = half[:len(y) // 2], half[len(y) // 2:]
        out = []
        for step, model in erm_run(data, seed, lr=configs[0].erm_lr):
            z = extract_features(model.features, val.x)
            for cfg in configs:
                mean, std, coef, icpt = fit_dfr_head(z[a], y[a], groups[a], C=cfg.C, subsets=cfg.subsets, seed=seed)
                logits_b = torch.as_tensor(((z[b] - mean) / std) @ coef + icpt)
                sub = _Subset(val, b)
                out.append(Candidate(dataclasses.asdict(cfg), step, validation_scores(logits_b, sub),
                                     _dfr_builder(model, z, y, groups, cfg, seed, val.x.device)))
        return out


class _Subset:
    """The labels and factors of some rows of a split (what validation_scores reads)."""

    def __init__(self, split, idx):
        self.y, self.factors = split.y[torch.as_tensor(idx)], split.factors[idx]


def _dfr_builder(model, z, y, groups, cfg, seed, device):
    def build():
        mean, std, coef, icpt = fit_dfr_head(z, y, groups, C=cfg.C, subsets=cfg.subsets, seed=seed)
        return LinearOnFeatures(model.features, mean, std, coef, icpt).to(device)
    return build


# --- the causal route ---------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class CausalConfig:
    latent_dim: int = 16        # dimensions of each block: animal latents and background latents
    temperature: float = 0.1    # InfoNCE temperature on the unit sphere
    C: float = 1.0              # inverse L2 strength of the classifier on the animal latents


class _TwoBlockEncoder(nn.Module):
    def __init__(self, width: int, latent_dim: int):
        super().__init__()
        self.cnn = SmallCNN(width=width, out_dim=2 * latent_dim)
        self.k = latent_dim

    def forward(self, x):
        z = self.cnn(x)
        return F.normalize(z[:, :self.k], dim=1), F.normalize(z[:, self.k:], dim=1)  # animal, background

    def animal(self, x):
        return self.forward(x)[0]


def _fit_logistic(z: np.ndarray, y: np.ndarray, C: float):
    from sklearn.linear_model import LogisticRegression

    mean, std = z.mean(0), z.std(0) + 1e-6
    lr = LogisticRegression(C=C, max_iter=2000).fit((z - mean) / std, y.astype(int))
    return mean, std, lr.coef_[0], float(lr.intercept_[0])


@register_method("causal")
class CausalRep(RobustMethod):
    """Weakly supervised causal representation, then a classifier on the animal latents alone.

    Training pairs are interventions on one cause, rendered by the simulator: ``x`` and ``x_b``
    (the same animal on the other background) and ``x_a`` (the other animal, same pose, colour,
    position and background). An encoder with two blocks ``(z_animal, z_background)`` is trained
    without labels by two InfoNCE losses: ``z_animal(x)`` must match ``z_animal(x_b)`` against all
    other images of the batch, the animal-swapped ``x_a`` among them (a hard negative that differs
    only in the animal); ``z_background(x)`` must match ``z_background(x_a)`` against the others,
    ``x_b`` among them. The animal block is thereby invariant to the background (the
    content/style block identification of von Kügelgen et al. 2021). A logistic regression on the
    animal latents of the training images and of their background-swapped twins, with the
    images' labels, is the classifier (the pairs make the background independent of the label for
    the head, so a residual background direction in the animal block gets no weight).
    Checkpoints of the encoder, each with a head per C, are the candidates.
    """

    Config = CausalConfig
    grid = {"C": (1.0, 0.1)}
    uses = "labels + interventional pairs (background swapped / animal swapped) from the simulator; no groups"

    def search(self, data, *, seed, log=None):
        # one encoder serves every head option; the encoder's own options are fixed or default
        configs = self.configs()
        base = configs[0]
        if log is not None:
            log(f"causal: encoder (latent_dim={base.latent_dim}, temperature={base.temperature}), "
                f"{len(configs)} head(s)")
        cfg, tr = data.config, data.train
        x_b, x_a = data.train_pairs()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            enc = _TwoBlockEncoder(cfg.width, base.latent_dim).to(tr.x.device)
        batches = epoch_batches(len(tr), cfg.batch_size, _gen(seed, 4))

        def loss(step):
            idx = next(batches).to(tr.x.device)
            za, zb = enc(tr.x[idx])
            za_b, zb_b = enc(x_b[idx])
            za_a, zb_a = enc(x_a[idx])
            target = torch.arange(len(idx), device=idx.device)
            # animal block: positive = same animal, other background; candidates include x_a
            la = torch.cat([za @ za_b.T, za @ za_a.T], dim=1) / base.temperature
            # background block: positive = other animal, same background; candidates include x_b
            lb = torch.cat([zb @ zb_a.T, zb @ zb_b.T], dim=1) / base.temperature
            return F.cross_entropy(la, target) + F.cross_entropy(lb, target)

        out: list = []
        y = np.concatenate([tr.y.cpu().numpy()] * 2)

        def on_checkpoint(step):
            e = snapshot(enc)
            # the head sees every training image on both backgrounds (its intervention pair), so any
            # background information left in the animal block carries no label information for it
            z = np.concatenate([extract_features(e.animal, tr.x), extract_features(e.animal, x_b)])
            for c in configs:
                mean, std, coef, b = _fit_logistic(z, y, c.C)
                m = LinearOnFeatures(e.animal, mean, std, coef, b).to(tr.x.device).eval()
                out.append(Candidate(dataclasses.asdict(c), step,
                                     validation_scores(predict_logits(m, data.val.x), data.val), lambda m=m: m, m))

        train_steps(enc, loss, steps=cfg.steps, lr=cfg.lr, checkpoints=eval_steps(cfg.steps, cfg.evals),
                    on_checkpoint=on_checkpoint)
        return out
