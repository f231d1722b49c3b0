"""Selection rules pick on validation only; the test splits stay sealed until the choice is final;
and, at tiny scale, GroupDRO and DFR beat ERM's worst-group accuracy on a confounded set."""

import dataclasses

import pytest

from crlkit.errors import CrlkitError
from crlkit.robust import (RULES, Candidate, ShortcutConfig, TestSplitSealed, check_rules, make_shortcut_data,
                           run_search, select)
from crlkit.robust import selection as selection_module

TINY = ShortcutConfig(n_train=96, n_val=32, n_test=48, steps=4, evals=2, batch_size=16, width=4, image_size=16)


def _cand(step, wg, wc, avg):
    return Candidate({"step": step}, step, {"worst_group": wg, "worst_class": wc, "average": avg}, lambda: None)


def test_each_rule_maximises_its_own_validation_score():
    cands = [_cand(1, 0.9, 0.5, 0.6), _cand(2, 0.2, 0.95, 0.7), _cand(3, 0.1, 0.3, 0.99), _cand(4, 0.9, 0.5, 0.6)]
    assert select(cands, "worst_group").step == 1  # tie with step 4: the earlier step
    assert select(cands, "worst_class").step == 2
    assert select(cands, "average").step == 3
    with pytest.raises(CrlkitError, match="oracle"):
        select(cands, "oracle")  # the oracle reads test data: not a validation rule
    assert check_rules("all") == RULES and check_rules("worst_class") == ("worst_class",)
    with pytest.raises(CrlkitError, match="worst_group"):
        check_rules("best")


def test_test_splits_are_sealed_until_selection_is_final(monkeypatch):
    data = make_shortcut_data(TINY, seed=0)
    with pytest.raises(TestSplitSealed):
        data.test_ood
    events = []
    real_test, real_select = type(data)._test, selection_module.select

    def spy_test(self, name):
        events.append(("test", name, self.sealed))
        return real_test(self, name)

    def spy_select(cands, rule):
        events.append(("select", rule, None))
        return real_select(cands, rule)

    monkeypatch.setattr(type(data), "_test", spy_test)
    monkeypatch.setattr(selection_module, "select", spy_select)
    res = run_search("groupdro", data, 0, rules="all", step_size=0.01, weight_decay=1e-3)
    assert set(res) == set(RULES)
    kinds = [e[0] for e in events]
    last_select, first_test = max(i for i, k in enumerate(kinds) if k == "select"), kinds.index("test")
    assert last_select < first_test  # every validation choice is made before any test read
    assert all(not sealed for kind, _, sealed in events if kind == "test")  # and no read was attempted sealed
    assert res["oracle"]["labels"]["selection"].startswith("test")
    assert res["worst_class"]["labels"]["selection"] == "validation labels only (no group labels in selection)"


def test_a_method_that_reads_a_test_split_during_its_search_fails(monkeypatch):
    from crlkit.robust.methods import ERM

    def cheat(self, data, seed, config):
        return [data.test_ood]

    monkeypatch.setattr(ERM, "candidates", cheat)
    with pytest.raises(TestSplitSealed):
        run_search("erm", make_shortcut_data(TINY, seed=0), 0)


# an easy animal (full contrast, large) so that a short run suffices; the background still agrees
# with the label more often (0.95) than the shape does (0.9), so ERM takes the shortcut. The
# validation split is large enough to hold ~40 images of each minority group (DFR's last layer)
CONFOUNDED = ShortcutConfig(rho=0.95, shape_noise=0.1, contrast=1.0, animal_scale=2.0, image_size=16, width=8,
                            n_train=800, n_val=1600, n_test=200, steps=150, evals=3, batch_size=64)


@pytest.fixture(scope="module")
def confounded():
    return make_shortcut_data(CONFOUNDED, seed=3)


def test_groupdro_and_dfr_beat_erm_worst_group(confounded):
    erm = run_search("erm", confounded, 3, lr=3e-3)["worst_group"]
    gdro = run_search("groupdro", confounded, 3, step_size=0.01, weight_decay=1e-3)["worst_group"]
    dfr = run_search("dfr", confounded, 3, C=1.0, subsets=5, erm_lr=3e-3)["worst_group"]  # reuses ERM's run
    assert erm["worst_group_accuracy"] < 0.2
    assert gdro["worst_group_accuracy"] > erm["worst_group_accuracy"] + 0.3
    assert dfr["worst_group_accuracy"] > erm["worst_group_accuracy"] + 0.3
