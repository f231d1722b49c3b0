"""The shortcut experiment: data splits of ``cows_camels``, training one method, and its measures.

Splits (all from one seed):

- ``train``: ``n_train`` images from the training environments ``rho +- env_spread`` (two
  environments, equally many images), with ``shape_noise`` and label noise ``eta``.
- ``heldout``: ``n_heldout`` group-balanced images from the training distribution (equally many
  per (label, background) group) — only DFR uses it.
- ``test_id`` (the training environments' mixture), ``test_ood`` (``rho' = 0.5``) and
  ``test_reversed`` (``rho' = 1 - rho``): clean shapes (``shape_noise = 0``), label noise ``eta``.

Measures (:func:`evaluate`): ``id_accuracy``, ``ood_accuracy``, ``reversed_accuracy``;
``worst_group_accuracy`` and ``mean_group_accuracy`` over the four (animal, background) groups of
``test_ood``; ``background_flip_rate`` on ``test_ood`` rendered again with the other background.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch

from crlkit.data.cows_camels import ANIMALS, BACKGROUNDS, CowsCamels, Split, check_probability
from crlkit.errors import CrlkitError
from crlkit.robust.classifier import predict_logits
from crlkit.robust.measures import (accuracy_score, background_flip_rate, group_accuracies,
                                    mean_group_accuracy, worst_group_accuracy)

RESULT_KEYS = ("method", "id_accuracy", "ood_accuracy", "reversed_accuracy", "worst_group_accuracy",
               "mean_group_accuracy", "background_flip_rate")


@dataclasses.dataclass(frozen=True)
class ShortcutConfig:
    rho: float = 0.95           # mean P(background matches animal) over the training environments
    env_spread: float = 0.04    # the two training environments have rho + spread and rho - spread (clipped)
    eta: float = 0.0            # label noise (train and test)
    shape_noise: float = 0.1    # share of training animals drawn with the other class's silhouette
    contrast: float = 0.8       # animal colour contrast (lower = harder animal cue)
    animal_scale: float = 1.3   # animal size multiplier (lower = harder animal cue)
    image_size: int = 32        # classifier input resolution (rendered at 64, average-pooled)
    n_train: int = 5000         # training images (Waterbirds has 4,795)
    n_heldout: int = 400        # group-balanced held-out images (DFR's last-layer data)
    n_test: int = 2000          # images per test distribution
    steps: int = 1500           # optimisation steps of every method (fixed; no wall-time budget)
    batch_size: int = 64        # images per step
    lr: float = 1e-3            # Adam learning rate
    width: int = 16             # SmallCNN width (features = 2 * width)

    def __post_init__(self):
        for name in ("rho", "eta", "shape_noise", "contrast"):
            check_probability(name, getattr(self, name))
        if not (0.0 <= self.env_spread <= 0.5):
            raise CrlkitError(f"env_spread must be in [0, 0.5]; got {self.env_spread!r}")
        for name in ("n_train", "n_heldout", "n_test", "steps", "batch_size", "width"):
            if int(getattr(self, name)) < 1:
                raise CrlkitError(f"{name} must be a positive integer; got {getattr(self, name)!r}")
        if self.n_heldout < 4:
            raise CrlkitError(f"n_heldout must be >= 4 (one per group); got {self.n_heldout}")

    @property
    def train_rhos(self) -> tuple[float, float]:
        return (min(1.0, self.rho + self.env_spread), max(0.0, self.rho - self.env_spread))

    def dataset(self, rhos, *, shape_noise: float = 0.0) -> CowsCamels:
        return CowsCamels(rhos, shape_noise=shape_noise, eta=self.eta, contrast=self.contrast,
                          animal_scale=self.animal_scale, image_size=self.image_size)


@dataclasses.dataclass
class ShortcutData:
    """All splits of one seeded experiment; ``train_pairs`` are counterfactual renderings of the
    training images (background swapped / animal swapped) for methods that use interventions."""

    config: ShortcutConfig
    train: Split
    heldout: Split
    test_id: Split
    test_ood: Split
    test_reversed: Split
    ood_swapped_x: torch.Tensor  # test_ood images with the other background
    train_dataset: CowsCamels
    _pairs: tuple | None = None
    _cache: dict = dataclasses.field(default_factory=dict)

    def cached(self, key, build):
        """A trained model shared by methods that start alike (ERM is DFR's first stage)."""
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    def train_pairs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(x with the background swapped, x with the animal swapped) for every training image."""
        if self._pairs is None:
            ds, f = self.train_dataset, self.train.factors
            dev = self.train.x.device
            self._pairs = (ds.observations_from_factors(ds.swap_background(f), device=dev),
                           ds.observations_from_factors(ds.swap_animal(f), device=dev))
        return self._pairs


def make_shortcut_data(config: ShortcutConfig, seed: int, *, device="cpu") -> ShortcutData:
    """Render every split of one experiment, deterministically from ``seed``."""
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence([int(seed), 5]).spawn(5)]
    train_ds = config.dataset(config.train_rhos, shape_noise=config.shape_noise)
    train = train_ds.sample_split(config.n_train, rngs[0], device=device)
    heldout = train_ds.sample_split(config.n_heldout, rngs[1], device=device, balanced_groups=True)
    test_id = config.dataset(config.train_rhos).sample_split(config.n_test, rngs[2], device=device)
    ood_ds = config.dataset((0.5,))
    test_ood = ood_ds.sample_split(config.n_test, rngs[3], device=device)
    test_rev = config.dataset((1.0 - config.rho,)).sample_split(config.n_test, rngs[4], device=device)
    swapped = ood_ds.observations_from_factors(ood_ds.swap_background(test_ood.factors), device=device)
    return ShortcutData(config, train, heldout, test_id, test_ood, test_rev, swapped, train_ds)


def _hard(logits: torch.Tensor) -> np.ndarray:
    return (logits > 0).long().cpu().numpy()


def _labels(y: torch.Tensor) -> np.ndarray:
    return y.long().cpu().numpy()


def evaluate(predictor, data: ShortcutData, method: str = "") -> dict:
    """The result dict (``RESULT_KEYS``) of a trained predictor ``x -> logits``, plus
    ``group_accuracies`` (cow/grass, cow/sand, camel/grass, camel/sand on ``test_ood``).
    Groups are (observed label, background): with ``eta = 0`` the label is the animal."""
    res: dict = {"method": method}
    for key, split in (("id_accuracy", data.test_id), ("ood_accuracy", data.test_ood),
                       ("reversed_accuracy", data.test_reversed)):
        res[key] = accuracy_score(_labels(split.y), _hard(predict_logits(predictor, split.x)))
    ood = data.test_ood
    y, bg = _labels(ood.y), ood.factors[:, 3]
    pred = _hard(predict_logits(predictor, ood.x))
    res["worst_group_accuracy"] = worst_group_accuracy(y, pred, bg)
    res["mean_group_accuracy"] = mean_group_accuracy(y, pred, bg)
    res["background_flip_rate"] = background_flip_rate(pred, _hard(predict_logits(predictor, data.ood_swapped_x)))
    res["group_accuracies"] = {f"{ANIMALS[k[0]]}/{BACKGROUNDS[k[1]]}": acc
                               for k, (acc, _) in group_accuracies(y, pred, bg).items()}
    return res


def run_method(name: str, data: ShortcutData, seed: int, **method_options) -> dict:
    """Train method ``name`` on ``data`` with ``seed``; its results plus ``seconds`` and what it used."""
    from crlkit.robust.methods import make_method

    method = make_method(name, **method_options)
    t0 = time.perf_counter()
    predictor = method.fit(data, seed=seed)
    res = evaluate(predictor, data, method=name)
    res["seconds"] = time.perf_counter() - t0
    res["uses"] = method.uses
    res["selection"] = method.selection
    return res
