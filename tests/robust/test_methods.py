"""Measures on hand-made predictions; every method runs a few steps; the IRMv1 penalty."""

import dataclasses

import numpy as np
import pytest
import torch

from crlkit.errors import CrlkitError
from crlkit.robust import (RESULT_KEYS, ShortcutConfig, background_flip_rate, evaluate, group_accuracies,
                           list_methods, make_method, make_shortcut_data, mean_group_accuracy, run_method,
                           worst_group_accuracy)
from crlkit.robust.methods import irmv1_risk_and_penalty

TINY = ShortcutConfig(n_train=96, n_heldout=16, n_test=48, steps=3, batch_size=16, width=4, image_size=16)


@pytest.fixture(scope="module")
def tiny_data():
    return make_shortcut_data(TINY, seed=0)


def test_group_measures_on_hand_made_predictions():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    bg = np.array([0, 0, 1, 1, 0, 0, 1, 1])
    shortcut = bg.copy()  # predicts the background
    assert {k: a for k, (a, _) in group_accuracies(y, shortcut, bg).items()} == {
        (0, 0): 1.0, (0, 1): 0.0, (1, 0): 0.0, (1, 1): 1.0}
    assert worst_group_accuracy(y, shortcut, bg) == 0.0
    assert mean_group_accuracy(y, shortcut, bg) == 0.5
    pred = np.array([0, 1, 0, 0, 1, 1, 1, 0])  # groups: 0.5, 1, 1, 0.5
    assert worst_group_accuracy(y, pred, bg) == 0.5
    assert mean_group_accuracy(y, pred, bg) == pytest.approx(0.75)
    assert background_flip_rate(shortcut, 1 - shortcut) == 1.0
    assert background_flip_rate(y, y) == 0.0
    assert background_flip_rate([0, 1, 1, 0], [0, 1, 0, 1]) == 0.5
    with pytest.raises(CrlkitError):
        background_flip_rate([0, 1], [0, 1, 1])


def test_evaluate_scores_an_oracle_and_a_shortcut(tiny_data):
    d = tiny_data
    # the oracle reads the true animal of each image; the shortcut reads its background
    lookup = {}
    for split in (d.test_id, d.test_ood, d.test_reversed):
        for x, f in zip(split.x, split.factors):
            lookup[x.numpy().tobytes()] = f
    for x, f in zip(d.ood_swapped_x, d.test_ood.factors):
        lookup[x.numpy().tobytes()] = f.copy()
        lookup[x.numpy().tobytes()][3] = 1 - f[3]

    def by(col):
        return lambda xs: torch.tensor([2.0 * lookup[x.numpy().tobytes()][col] - 1 for x in xs])

    oracle, shortcut = evaluate(by(2), d), evaluate(by(3), d)
    assert oracle["worst_group_accuracy"] == 1.0 and oracle["background_flip_rate"] == 0.0
    assert oracle["reversed_accuracy"] == 1.0
    assert shortcut["worst_group_accuracy"] == 0.0 and shortcut["background_flip_rate"] == 1.0
    assert shortcut["reversed_accuracy"] < 0.3 and shortcut["id_accuracy"] > 0.7


@pytest.mark.parametrize("name", ["erm", "groupdro", "irm", "jtt", "dfr", "causal"])
def test_each_method_runs_and_returns_the_result_keys(tiny_data, name):
    res = run_method(name, tiny_data, seed=1)
    for k in RESULT_KEYS:
        assert k in res
    for k in RESULT_KEYS[1:]:
        assert 0.0 <= res[k] <= 1.0
    assert res["method"] == name and res["uses"] and res["selection"]


def test_methods_are_seeded():
    cfg = dataclasses.replace(TINY, steps=5)
    a = make_method("erm").fit(make_shortcut_data(cfg, seed=0), seed=3)
    b = make_method("erm").fit(make_shortcut_data(cfg, seed=0), seed=3)
    c = make_method("erm").fit(make_shortcut_data(cfg, seed=0), seed=4)
    x = make_shortcut_data(cfg, seed=1).test_ood.x
    assert torch.equal(a(x), b(x)) and not torch.equal(a(x), c(x))


def test_registry_and_options():
    assert set(list_methods()) == {"erm", "groupdro", "irm", "jtt", "dfr", "causal"}
    with pytest.raises(CrlkitError, match="groupdro"):
        make_method("group_dro")
    with pytest.raises(CrlkitError, match="upweight"):
        make_method("jtt", up_weight=3)
    assert make_method("jtt", upweight=5.0).config.upweight == 5.0


def test_irmv1_penalty_matches_its_closed_form():
    torch.manual_seed(0)
    logits = torch.randn(50)
    y = (torch.rand(50) < 0.5).float()
    risk, pen = irmv1_risk_and_penalty(logits, y)
    # d/dw mean BCE(w l, y) at w = 1 is mean((sigmoid(l) - y) * l)
    grad = ((torch.sigmoid(logits) - y) * logits).mean()
    assert pen.item() == pytest.approx(grad.item() ** 2, rel=1e-5)
    assert risk.item() == pytest.approx(torch.nn.functional.binary_cross_entropy_with_logits(logits, y).item())


def test_config_validation():
    with pytest.raises(CrlkitError, match="rho"):
        ShortcutConfig(rho=1.2)
    with pytest.raises(CrlkitError, match="eta"):
        ShortcutConfig(eta=-0.1)
    assert ShortcutConfig(rho=0.95, env_spread=0.04).train_rhos == pytest.approx((0.99, 0.91))
    assert dataclasses.replace(TINY, rho=1.0).train_rhos == (1.0, 0.96)


def test_splits_have_the_intended_distributions():
    cfg = dataclasses.replace(TINY, n_train=2000, n_test=400, shape_noise=0.2)
    d = make_shortcut_data(cfg, seed=2)
    f = d.train.factors
    assert abs(np.mean(f[:, 2] == f[:, 3]) - cfg.rho) < 0.02
    assert abs(np.mean(f[:, 4] != f[:, 2]) - 0.2) < 0.03
    assert np.all(d.test_ood.factors[:, 4] == d.test_ood.factors[:, 2])  # clean test shapes
    assert abs(np.mean(d.test_ood.factors[:, 2] == d.test_ood.factors[:, 3]) - 0.5) < 0.08
    assert np.mean(d.test_reversed.factors[:, 2] == d.test_reversed.factors[:, 3]) < 0.1
    assert np.bincount(d.heldout.label_group.numpy(), minlength=4).min() == cfg.n_heldout // 4


def test_irmv1_split_penalty_is_the_product_of_half_gradients():
    torch.manual_seed(1)
    logits, y = torch.randn(40), (torch.rand(40) < 0.5).float()
    _, pen = irmv1_risk_and_penalty(logits, y, split=True)
    g = lambda l, t: ((torch.sigmoid(l) - t) * l).mean()  # noqa: E731
    assert pen.item() == pytest.approx((g(logits[:20], y[:20]) * g(logits[20:], y[20:])).item(), rel=1e-5)
    # the penalty is a gradient wrt the logit scale: zero logits give zero penalty
    _, pen0 = irmv1_risk_and_penalty(torch.zeros(10), torch.ones(10), split=True)
    assert pen0.item() == 0.0
