"""Robust classification methods, registered by name: erm, groupdro, irm, jtt, dfr, causal.

Every method is a small class with a frozen ``Config``, the labels it ``uses`` and its model
``selection`` rule, and ``fit(data, seed) -> predictor`` (a module ``x -> logit``). All train the
same :class:`~crlkit.robust.classifier.SmallCNN` for the experiment's fixed number of steps with
Adam; none looks at a test set.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from crlkit.registry import Registry, check_options
from crlkit.robust.classifier import (LinearOnFeatures, SmallCNN, epoch_batches, extract_features,
                                      group_balanced_weights, train_steps, weighted_batches)

METHODS: Registry = Registry("method")


def register_method(name: str):
    def _add(cls):
        cls.name = name
        return METHODS.register(name, cls)
    return _add


def make_method(name: str, **options) -> "RobustMethod":
    """The method registered as ``name``, configured by keyword options of its ``Config``."""
    cls = METHODS.get(name)
    check_options(f"method {name!r}", cls.Config, options)
    return cls(cls.Config(**options))


def list_methods() -> list[str]:
    return METHODS.names()


def seeded_model(seed: int, **kwargs) -> SmallCNN:
    """A SmallCNN whose initial weights depend only on ``seed`` (the global RNG is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return SmallCNN(**kwargs)


def _gen(seed: int, stream: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(np.random.SeedSequence([int(seed), stream]).generate_state(1)[0]))


@dataclasses.dataclass(frozen=True)
class NoOptions:
    pass


class RobustMethod:
    name: ClassVar[str] = ""
    Config: ClassVar[type] = NoOptions
    uses: ClassVar[str] = ""       # which annotations it needs beyond the images
    selection: ClassVar[str] = ""  # how its final model is chosen

    def __init__(self, config=None):
        self.config = config if config is not None else self.Config()

    def fit(self, data, *, seed: int) -> nn.Module:
        raise NotImplementedError


def _bce(logits, y, reduction="mean"):
    return F.binary_cross_entropy_with_logits(logits, y, reduction=reduction)


def train_erm(data, seed: int, *, steps: int, weight_decay: float = 0.0, sample_weights=None) -> SmallCNN:
    """Minimise the mean training cross-entropy (shuffled epochs, or weighted draws)."""
    cfg, tr = data.config, data.train
    model = seeded_model(seed, width=cfg.width).to(tr.x.device)
    gen = _gen(seed, 1)
    batches = (epoch_batches(len(tr), cfg.batch_size, gen) if sample_weights is None
               else weighted_batches(sample_weights, cfg.batch_size, gen))

    def loss(step):
        idx = next(batches).to(tr.x.device)
        return _bce(model(tr.x[idx]), tr.y[idx])

    train_steps(model, loss, steps=steps, lr=cfg.lr, weight_decay=weight_decay)
    return model


@dataclasses.dataclass(frozen=True)
class ERMConfig:
    weight_decay: float = 0.0  # L2 penalty (Adam, coupled)


@register_method("erm")
class ERM(RobustMethod):
    """Empirical risk minimisation: the baseline that learns the shortcut."""

    Config = ERMConfig
    uses = "labels"
    selection = "last step of a fixed budget"

    def fit(self, data, *, seed):
        if self.config.weight_decay == 0.0:  # cached: a method that starts from it reuses it
            steps = data.config.steps
            return data.cached(("erm", seed, steps), lambda: train_erm(data, seed, steps=steps))
        return train_erm(data, seed, steps=data.config.steps, weight_decay=self.config.weight_decay)


@dataclasses.dataclass(frozen=True)
class GroupDROConfig:
    step_size: float = 0.01    # eta_q of the exponentiated-gradient update of the group weights q
    weight_decay: float = 1e-3  # the strong L2 GroupDRO needs (Sagawa et al. 2020)


@register_method("groupdro")
class GroupDRO(RobustMethod):
    """Group DRO (Sagawa et al. 2020): minimise ``sum_g q_g L_g`` with ``q_g ∝ q_g exp(eta_q L_g)``
    over the (label, background) groups, on group-balanced batches ("reweight_groups"), with
    strong L2."""

    Config = GroupDROConfig
    uses = "labels + group annotations (label x background) on the training set"
    selection = ("last step of a fixed budget, which acts as early stopping, with L2 (at 4,000 steps "
                 "instead of 1,500 it overfits the small minority groups)")

    def fit(self, data, *, seed):
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
            g = groups[idx]
            onehot = F.one_hot(g, 4).float()                          # (B, 4)
            counts = onehot.sum(0)
            group_loss = (onehot * per[:, None]).sum(0) / counts.clamp(min=1)  # (4,)
            with torch.no_grad():
                q = q * torch.exp(self.config.step_size * group_loss.detach() * (counts > 0))
                q = q / q.sum()
            return (q * group_loss).sum()

        train_steps(model, loss, steps=cfg.steps, lr=cfg.lr, weight_decay=self.config.weight_decay)
        return model


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
    penalty_weight: float = 1000.0  # lambda of the IRMv1 penalty after the anneal
    anneal_steps: int = 300         # steps with lambda = 1 before switching to penalty_weight
    weight_decay: float = 1e-3      # L2 penalty
    split_penalty: bool = False     # unbiased two-half estimate of the penalty (see irmv1_risk_and_penalty)


@register_method("irm")
class IRM(RobustMethod):
    """IRMv1 (Arjovsky et al. 2019): ``sum_e R_e + lambda sum_e (d R_e(w * logits) / dw |_{w=1})^2``
    over the training environments; lambda = 1 during the anneal, then ``penalty_weight`` with the
    loss divided by it (as the reference code does)."""

    Config = IRMConfig
    uses = "labels + environment index of each training image"
    selection = "last step of a fixed budget"

    def fit(self, data, *, seed):
        cfg, tr, c = data.config, data.train, self.config
        model = seeded_model(seed, width=cfg.width).to(tr.x.device)
        batches = epoch_batches(len(tr), cfg.batch_size, _gen(seed, 3))
        envs = tr.env
        n_env = int(envs.max()) + 1

        def loss(step):
            idx = next(batches).to(tr.x.device)
            logits, y, e = model(tr.x[idx]), tr.y[idx], envs[idx]
            risks, penalty = [], torch.zeros((), device=tr.x.device)
            for k in range(n_env):
                m = e == k
                if m.sum() == 0:
                    continue
                r, p = irmv1_risk_and_penalty(logits[m], y[m], split=c.split_penalty)
                risks.append(r)
                penalty = penalty + p
            lam = 1.0 if step < c.anneal_steps else c.penalty_weight
            total = torch.stack(risks).mean() + lam * penalty
            return total / lam if lam > 1.0 else total

        train_steps(model, loss, steps=cfg.steps, lr=cfg.lr, weight_decay=c.weight_decay)
        return model


@dataclasses.dataclass(frozen=True)
class JTTConfig:
    first_steps: int = 300   # T: ERM steps of the identification model
    upweight: float = 20.0   # lambda_up: sampling weight of the training errors of the first model


@register_method("jtt")
class JTT(RobustMethod):
    """Just Train Twice (Liu et al. 2021): an ERM model trained briefly marks its training errors;
    a second model is trained with those examples upsampled ``upweight`` times."""

    Config = JTTConfig
    uses = "labels (no group annotations for training)"
    selection = ("fixed T, upweight and budget (the paper tunes them on group-labelled validation data; "
                 "like GroupDRO it overfits the upsampled errors when trained much longer)")

    def fit(self, data, *, seed):
        cfg, tr = data.config, data.train
        first = train_erm(data, seed + 7919, steps=self.config.first_steps)
        with torch.no_grad():
            wrong = torch.cat([(first(tr.x[s:s + 1024]) > 0).float() != tr.y[s:s + 1024]
                               for s in range(0, len(tr), 1024)])
        weights = torch.where(wrong, self.config.upweight, 1.0).double().cpu()
        self.error_set_size = int(wrong.sum())
        return train_erm(data, seed, steps=cfg.steps, sample_weights=weights)


def _fit_logistic(z: np.ndarray, y: np.ndarray, C: float, seed: int):
    from sklearn.linear_model import LogisticRegression

    mean, std = z.mean(0), z.std(0) + 1e-6
    lr = LogisticRegression(C=C, max_iter=2000, random_state=seed).fit((z - mean) / std, y.astype(int))
    return mean, std, lr.coef_[0], float(lr.intercept_[0])


@dataclasses.dataclass(frozen=True)
class DFRConfig:
    C: float = 1.0                    # inverse L2 strength of the last-layer logistic regression
    erm_steps_factor: float = 8 / 3   # ERM stage = factor x the experiment's steps (4,000 for 1,500)


@register_method("dfr")
class DFR(RobustMethod):
    """Deep Feature Reweighting (Kirichenko et al. 2023): train ERM, then refit only the last
    layer (logistic regression on standardised features) on a small group-balanced held-out set.

    DFR needs an ERM model whose features encode the animal. ERM learns the background within a
    few hundred steps and the animal's features only slowly after it (the animal adds log-odds
    but never outweighs the background), so DFR's ERM stage trains ``erm_steps_factor`` times
    longer than the other methods: measured on 5 seeds, a 1,500-step ERM left one seed with no
    usable animal features (worst-group 0.43), a 4,000-step one gave 0.94-0.99 on all five. The
    longer ERM is still a pure shortcut model (worst-group <= 0.12, flip rate >= 0.75)."""

    Config = DFRConfig
    uses = "labels + a small group-balanced held-out set with group annotations"
    selection = "ERM at a fixed budget (erm_steps_factor x steps); last layer fitted on the held-out set"

    def fit(self, data, *, seed):
        steps = max(1, round(self.config.erm_steps_factor * data.config.steps))
        model = data.cached(("erm", seed, steps), lambda: train_erm(data, seed, steps=steps))
        z = extract_features(model.features, data.heldout.x)
        mean, std, coef, b = _fit_logistic(z, data.heldout.y.cpu().numpy(), self.config.C, seed)
        return LinearOnFeatures(model.features, mean, std, coef, b).to(data.train.x.device)


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
    """

    Config = CausalConfig
    uses = "labels + interventional pairs (background swapped / animal swapped) from the simulator; no groups"
    selection = "last step of a fixed budget"

    def fit(self, data, *, seed):
        cfg, tr, c = data.config, data.train, self.config
        x_b, x_a = data.train_pairs()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            enc = _TwoBlockEncoder(cfg.width, c.latent_dim).to(tr.x.device)
        batches = epoch_batches(len(tr), cfg.batch_size, _gen(seed, 4))

        def loss(step):
            idx = next(batches).to(tr.x.device)
            za, zb = enc(tr.x[idx])
            za_b, zb_b = enc(x_b[idx])
            za_a, zb_a = enc(x_a[idx])
            target = torch.arange(len(idx), device=idx.device)
            # animal block: positive = same animal, other background; candidates include x_a
            la = torch.cat([za @ za_b.T, za @ za_a.T], dim=1) / c.temperature
            # background block: positive = other animal, same background; candidates include x_b
            lb = torch.cat([zb @ zb_a.T, zb @ zb_b.T], dim=1) / c.temperature
            return F.cross_entropy(la, target) + F.cross_entropy(lb, target)

        train_steps(enc, loss, steps=cfg.steps, lr=cfg.lr)
        # the head sees every training image on both backgrounds (its intervention pair), so any
        # background information left in the animal block carries no label information for it
        z = np.concatenate([extract_features(enc.animal, tr.x), extract_features(enc.animal, x_b)])
        y = np.concatenate([tr.y.cpu().numpy()] * 2)
        mean, std, coef, b = _fit_logistic(z, y, c.C, seed)
        return LinearOnFeatures(enc.animal, mean, std, coef, b).to(tr.x.device)
