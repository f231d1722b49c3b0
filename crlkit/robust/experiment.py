"""The shortcut experiment: data splits of ``cows_camels``, the test seal, and the measures.

Splits (all from one seed):

- ``train``: ``n_train`` images from the training environments (``rhos``, or ``rho +- env_spread``;
  equally many images per environment), with ``shape_noise`` and label noise ``eta``.
- ``val``: ``n_val`` images from the *same* distribution as ``train``, with group labels. Model
  selection reads it (and DFR fits its last layer on it); see :mod:`crlkit.robust.selection`.
- ``test_id`` (the training environments' mixture), ``test_ood`` (``rho' = 0.5``) and
  ``test_reversed`` (``rho' = test_rho``, by default ``1 - rho``): shape noise ``test_shape_noise``
  (0: clean shapes), label noise ``eta``.

The test splits are sealed when the data are made: reading one raises :class:`TestSplitSealed`
until :meth:`ShortcutData.unseal` is called, which the selection does once its choice is final.

Measures (:func:`evaluate`): ``id_accuracy``, ``ood_accuracy``, ``reversed_accuracy``;
``worst_group_accuracy`` and ``mean_group_accuracy`` over the four (label, background) groups of
``test_ood``; ``background_flip_rate`` on ``test_ood`` rendered again with the other background.
``id_accuracy`` is the "average accuracy" of the Waterbirds papers (groups weighted by their
training frequency, because ``test_id`` is drawn from the training distribution).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from crlkit.data.cows_camels import ANIMALS, BACKGROUNDS, CowsCamels, Split, check_probability
from crlkit.errors import CrlkitError
from crlkit.robust.classifier import predict_logits
from crlkit.robust.measures import (accuracy_score, background_flip_rate, group_accuracies,
                                    mean_group_accuracy, worst_group_accuracy)

RESULT_KEYS = ("method", "id_accuracy", "ood_accuracy", "reversed_accuracy", "worst_group_accuracy",
               "mean_group_accuracy", "background_flip_rate")

#: ShortcutConfig fields that describe the data (``--data-set``); the rest are training options (``--set``)
DATA_FIELDS = ("rho", "env_spread", "rhos", "test_rho", "eta", "shape_noise", "test_shape_noise", "contrast",
               "animal_scale", "image_size", "n_train", "n_val", "n_test")
TRAIN_FIELDS = ("steps", "batch_size", "lr", "width", "evals")


class TestSplitSealed(CrlkitError):
    """A test split was read before model selection was final."""

    __test__ = False  # not a pytest test class


@dataclasses.dataclass(frozen=True)
class ShortcutConfig:
    rho: float = 0.95             # mean P(background matches animal) over the training environments
    env_spread: float = 0.04      # the two training environments have rho + spread and rho - spread (clipped)
    rhos: tuple[float, ...] = ()  # explicit training environments (one agreement each); overrides rho, env_spread
    test_rho: float | None = None  # agreement of the reversed test split; None: 1 - mean training agreement
    eta: float = 0.0              # label noise (train, validation and test)
    shape_noise: float = 0.1      # share of training/validation animals drawn with the other class's silhouette
    test_shape_noise: float = 0.0  # the same for the test splits (0: clean shapes)
    contrast: float = 0.8         # animal colour contrast (lower = harder animal cue)
    animal_scale: float = 1.3     # animal size multiplier (lower = harder animal cue)
    image_size: int = 16          # classifier input resolution (rendered at 64, average-pooled)
    n_train: int = 3000           # training images (Waterbirds has 4,795)
    n_val: int = 1000             # validation images from the training distribution, with group labels
    n_test: int = 1000            # images per test distribution
    steps: int = 300              # optimisation steps of every training run (the budget)
    batch_size: int = 128         # images per step
    lr: float = 1e-3              # Adam learning rate where a method's search does not set it
    width: int = 16               # SmallCNN width (features = 2 * width)
    evals: int = 5                # validation checkpoints per run, evenly spaced (each a candidate model)

    def __post_init__(self):
        for name in ("rho", "eta", "shape_noise", "test_shape_noise", "contrast"):
            check_probability(name, getattr(self, name))
        object.__setattr__(self, "rhos", tuple(check_probability("rhos", r) for r in self.rhos))
        if self.test_rho is not None:
            check_probability("test_rho", self.test_rho)
        if not (0.0 <= self.env_spread <= 0.5):
            raise CrlkitError(f"env_spread must be in [0, 0.5]; got {self.env_spread!r}")
        for name in ("n_train", "n_test", "steps", "batch_size", "width", "evals"):
            if int(getattr(self, name)) < 1:
                raise CrlkitError(f"{name} must be a positive integer; got {getattr(self, name)!r}")
        if self.n_val < 8:
            raise CrlkitError(f"n_val must be >= 8 (two per group); got {self.n_val}")
        if not self.lr > 0:
            raise CrlkitError(f"lr must be > 0; got {self.lr!r}")

    @property
    def train_rhos(self) -> tuple[float, ...]:
        if self.rhos:
            return self.rhos
        return (min(1.0, self.rho + self.env_spread), max(0.0, self.rho - self.env_spread))

    @property
    def reversed_rho(self) -> float:
        return float(self.test_rho) if self.test_rho is not None else 1.0 - float(np.mean(self.train_rhos))

    def dataset(self, rhos, *, shape_noise: float = 0.0) -> CowsCamels:
        return CowsCamels(rhos, shape_noise=shape_noise, eta=self.eta, contrast=self.contrast,
                          animal_scale=self.animal_scale, image_size=self.image_size)

    def data_options(self) -> dict:
        return {k: getattr(self, k) for k in DATA_FIELDS}


@dataclasses.dataclass
class ShortcutData:
    """All splits of one seeded experiment; ``train_pairs`` are counterfactual renderings of the
    training images (background swapped / animal swapped) for methods that use interventions.
    The test splits are sealed (see the module docstring)."""

    config: ShortcutConfig
    train: Split
    val: Split
    train_dataset: CowsCamels
    _tests: dict
    sealed: bool = True
    _pairs: tuple | None = None
    _cache: dict = dataclasses.field(default_factory=dict)

    def _test(self, name: str):
        if self.sealed:
            raise TestSplitSealed(f"{name} was read before model selection was final (call unseal() after "
                                  "choosing the model)")
        return self._tests[name]

    test_id = property(lambda self: self._test("test_id"))
    test_ood = property(lambda self: self._test("test_ood"))
    test_reversed = property(lambda self: self._test("test_reversed"))
    ood_swapped_x = property(lambda self: self._test("ood_swapped_x"))  # test_ood with the other background

    def unseal(self) -> None:
        """Open the test splits: call once the model(s) to report are chosen."""
        self.sealed = False

    def seal(self) -> None:
        self.sealed = True

    def cached(self, key, build):
        """A trained run shared by methods that start alike (ERM is JTT's and DFR's first stage)."""
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
    """Render every split of one experiment, deterministically from ``seed``; tests sealed."""
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence([int(seed), 5]).spawn(5)]
    train_ds = config.dataset(config.train_rhos, shape_noise=config.shape_noise)
    train = train_ds.sample_split(config.n_train, rngs[0], device=device)
    val = train_ds.sample_split(config.n_val, rngs[1], device=device)
    noise = config.test_shape_noise
    test_id = config.dataset(config.train_rhos, shape_noise=noise).sample_split(config.n_test, rngs[2], device=device)
    ood_ds = config.dataset((0.5,), shape_noise=noise)
    test_ood = ood_ds.sample_split(config.n_test, rngs[3], device=device)
    test_rev = config.dataset((config.reversed_rho,), shape_noise=noise).sample_split(config.n_test, rngs[4],
                                                                                     device=device)
    swapped = ood_ds.observations_from_factors(ood_ds.swap_background(test_ood.factors), device=device)
    tests = {"test_id": test_id, "test_ood": test_ood, "test_reversed": test_rev, "ood_swapped_x": swapped}
    return ShortcutData(config, train, val, train_ds, tests)


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
