"""Measures on hand-made predictions; every method searches a few steps; the pieces of each method
(GroupDRO's weight update, JTT's error set, DFR's balanced subsets, the IRMv1 penalty)."""

import dataclasses

import numpy as np
import pytest
import torch

from crlkit.errors import CrlkitError
from crlkit.robust import (RESULT_KEYS, ShortcutConfig, background_flip_rate, evaluate, group_accuracies,
                           list_methods, make_method, make_shortcut_data, mean_group_accuracy, run_method,
                           worst_class_accuracy, worst_group_accuracy)
from crlkit.robust.classifier import eval_steps, train_steps
from crlkit.robust.methods import (balanced_subset, fit_dfr_head, groupdro_update, irmv1_risk_and_penalty,
                                   jtt_error_set)

TINY = ShortcutConfig(n_train=96, n_val=32, n_test=48, steps=4, evals=2, batch_size=16, width=4, image_size=16)
FIXED = {"erm": {"lr": 1e-3}, "groupdro": {"step_size": 0.01, "weight_decay": 1e-3},
         "irm": {"penalty_weight": 10.0, "anneal_fraction": 0.5, "batch_size": 32},
         "jtt": {"first_fraction": 0.5, "upweight": 5.0}, "dfr": {"C": 1.0, "subsets": 2}, "causal": {}}


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
    assert worst_class_accuracy(y, shortcut) == 0.5
    pred = np.array([0, 1, 0, 0, 1, 1, 1, 0])  # groups: 0.5, 1, 1, 0.5; classes 0.75, 0.75
    assert worst_group_accuracy(y, pred, bg) == 0.5
    assert mean_group_accuracy(y, pred, bg) == pytest.approx(0.75)
    assert worst_class_accuracy(y, np.array([0, 0, 0, 0, 1, 0, 0, 0])) == 0.25
    assert worst_class_accuracy(y, np.zeros(8)) == 0.0
    assert background_flip_rate(shortcut, 1 - shortcut) == 1.0
    assert background_flip_rate(y, y) == 0.0
    assert background_flip_rate([0, 1, 1, 0], [0, 1, 0, 1]) == 0.5
    with pytest.raises(CrlkitError):
        background_flip_rate([0, 1], [0, 1, 1])


def test_evaluate_scores_an_oracle_and_a_shortcut():
    d = make_shortcut_data(TINY, seed=0)
    d.unseal()
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
def test_each_method_searches_and_reports_what_it_chose(tiny_data, name):
    res = run_method(name, tiny_data, seed=1, **FIXED[name])
    for k in RESULT_KEYS[1:]:
        assert 0.0 <= res[k] <= 1.0
    assert res["method"] == name and res["selection"] == "worst_group"
    assert res["selected"]["step"] in eval_steps(TINY.steps, TINY.evals)
    assert set(res["validation"]) == {"worst_group", "worst_class", "average"}
    assert res["labels"]["method"] and "group" in res["labels"]["selection"]
    for k, v in FIXED[name].items():
        assert res["selected"]["params"][k] == v


def test_search_runs_the_grid_over_the_fields_not_fixed():
    assert len(make_method("irm").configs()) == 4  # a product grid
    cfgs = make_method("irm", penalty_weight=5.0).configs()
    assert [c.penalty_weight for c in cfgs] == [5.0, 5.0] and {c.anneal_fraction for c in cfgs} == {0.2, 0.4}
    assert len(make_method("groupdro").configs()) == 2  # a list of points
    cfgs = make_method("groupdro", step_size=0.5).configs()
    assert [c.step_size for c in cfgs] == [0.5, 0.5] and {c.weight_decay for c in cfgs} == {1e-3, 1e-2}
    assert len(make_method("groupdro", step_size=0.5, weight_decay=0.0).configs()) == 1  # duplicates dropped
    assert len(make_method("dfr").configs()) == 7


def test_methods_are_seeded():
    cfg = dataclasses.replace(TINY, steps=5)
    a = run_method("erm", make_shortcut_data(cfg, seed=0), seed=3, lr=1e-3)
    b = run_method("erm", make_shortcut_data(cfg, seed=0), seed=3, lr=1e-3)
    assert a["validation"] == b["validation"] and a["reversed_accuracy"] == b["reversed_accuracy"]


def test_registry_and_options():
    assert set(list_methods()) == {"erm", "groupdro", "irm", "jtt", "dfr", "causal"}
    with pytest.raises(CrlkitError, match="groupdro"):
        make_method("group_dro")
    with pytest.raises(CrlkitError, match="upweight"):
        make_method("jtt", up_weight=3)
    assert make_method("jtt", upweight="5").fixed == {"upweight": 5.0}


def test_groupdro_update_is_exponentiated_gradient():
    q = torch.full((4,), 0.25)
    loss = torch.tensor([1.0, 2.0, 0.0, 3.0])
    present = torch.tensor([True, True, True, False])
    new = groupdro_update(q, loss, present, 0.5)
    raw = torch.tensor([np.exp(0.5), np.exp(1.0), 1.0, 1.0], dtype=torch.float32) * 0.25  # group 3 absent: no update
    assert torch.allclose(new, raw / raw.sum())
    assert new.sum().item() == pytest.approx(1.0)
    assert torch.equal(groupdro_update(q, loss, present, 0.0), q)  # step size 0: uniform weights stay
    # repeated updates put the weight on the group with the largest loss
    w = q
    for _ in range(50):
        w = groupdro_update(w, loss, torch.ones(4, dtype=torch.bool), 0.5)
    assert w.argmax().item() == 3 and w[3] > 0.99


def test_jtt_error_set_marks_exactly_the_misclassified():
    x = torch.tensor([[-2.0], [-1.0], [0.5], [3.0], [-0.1]])
    y = torch.tensor([0.0, 1.0, 1.0, 0.0, 0.0])
    wrong = jtt_error_set(lambda t: t[:, 0], x, y)  # predicts class 1 where x > 0
    assert wrong.tolist() == [False, True, False, True, False]


def test_dfr_balanced_subsets_and_l1_head():
    rng = np.random.default_rng(0)
    groups = np.repeat([0, 1, 2, 3], [50, 5, 7, 40])
    idx = balanced_subset(groups, rng)
    assert np.bincount(groups[idx]).tolist() == [5, 5, 5, 5] and len(set(idx)) == 20
    # the label is feature 0; feature 1 is the (spurious) group attribute; the rest noise
    n = 400
    y = rng.integers(0, 2, n)
    bg = np.where(rng.random(n) < 0.9, y, 1 - y)
    z = np.column_stack([y + 0.3 * rng.standard_normal(n), bg + 0.3 * rng.standard_normal(n),
                         rng.standard_normal((n, 6))])
    mean, std, coef, icpt = fit_dfr_head(z, y, 2 * y + bg, C=0.1, subsets=5, seed=0)
    assert abs(coef[0]) > 5 * abs(coef[1]) and np.sum(coef[2:] == 0) >= 3  # L1 zeroes noise features
    pred = (((z - mean) / std) @ coef + icpt > 0).astype(int)
    assert worst_group_accuracy(y, pred, bg) > 0.8


def test_train_steps_stops_on_a_non_finite_loss_and_resets_adam():
    model = torch.nn.Linear(2, 1)
    seen = []

    def loss(step):
        return model.weight.sum() * (float("nan") if step == 5 else 1.0)

    out = train_steps(model, loss, steps=10, lr=0.1, checkpoints=[2, 4, 8], on_checkpoint=seen.append,
                      reset_optimizer_at=3)
    assert out["diverged_at"] == 5 and out["summary"] is None and seen == [2, 4]


def test_reset_adam_drops_the_moment_estimates_at_its_step():
    from types import SimpleNamespace

    from crlkit.robust.classifier import ResetAdam

    w = torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.Adam([w], lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        w.sum().backward()
        opt.step()
    trainer, cb = SimpleNamespace(optimizers={"adam": opt}), ResetAdam(3)
    cb.on_step_start(trainer, 2)
    assert int(opt.state[w]["step"]) == 3
    cb.on_step_start(trainer, 3)
    assert len(opt.state) == 0  # a fresh start: the next update is Adam's first


def test_irmv1_penalty_matches_its_closed_form():
    torch.manual_seed(0)
    logits = torch.randn(50)
    y = (torch.rand(50) < 0.5).float()
    risk, pen = irmv1_risk_and_penalty(logits, y)
    grad = ((torch.sigmoid(logits) - y) * logits).mean()  # d/dw mean BCE(w l, y) at w = 1
    assert pen.item() == pytest.approx(grad.item() ** 2, rel=1e-5)
    assert risk.item() == pytest.approx(torch.nn.functional.binary_cross_entropy_with_logits(logits, y).item())
    _, pen_split = irmv1_risk_and_penalty(logits[:40], y[:40], split=True)
    g = lambda l, t: ((torch.sigmoid(l) - t) * l).mean()  # noqa: E731
    assert pen_split.item() == pytest.approx((g(logits[:20], y[:20]) * g(logits[20:40], y[20:40])).item(), rel=1e-5)


def test_config_validation_and_environments():
    with pytest.raises(CrlkitError, match="rho"):
        ShortcutConfig(rho=1.2)
    with pytest.raises(CrlkitError, match="eta"):
        ShortcutConfig(eta=-0.1)
    with pytest.raises(CrlkitError, match="test_rho"):
        ShortcutConfig(test_rho=2.0)
    assert ShortcutConfig(rho=0.95, env_spread=0.04).train_rhos == pytest.approx((0.99, 0.91))
    assert dataclasses.replace(TINY, rho=1.0).train_rhos == (1.0, 0.96)
    c = ShortcutConfig(rhos=(0.9, 0.8), test_rho=0.1)
    assert c.train_rhos == (0.9, 0.8) and c.reversed_rho == 0.1
    assert ShortcutConfig(rhos=(0.9, 0.8)).reversed_rho == pytest.approx(0.15)


def test_splits_have_the_intended_distributions():
    cfg = dataclasses.replace(TINY, n_train=1000, n_val=1000, n_test=300, shape_noise=0.2, rhos=(0.9, 0.8),
                              test_rho=0.1, test_shape_noise=0.25)
    d = make_shortcut_data(cfg, seed=2)
    for split in (d.train, d.val):  # validation = the training distribution
        f = split.factors
        assert abs(np.mean(f[:, 2] == f[:, 3]) - 0.85) < 0.035
        assert abs(np.mean(f[:, 4] != f[:, 2]) - 0.2) < 0.04
        assert set(np.unique(f[:, 0])) == {0, 1}
    d.unseal()
    assert abs(np.mean(d.test_ood.factors[:, 4] != d.test_ood.factors[:, 2]) - 0.25) < 0.07
    assert abs(np.mean(d.test_ood.factors[:, 2] == d.test_ood.factors[:, 3]) - 0.5) < 0.08
    assert abs(np.mean(d.test_reversed.factors[:, 2] == d.test_reversed.factors[:, 3]) - 0.1) < 0.05
