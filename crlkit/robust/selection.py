"""Model selection for the shortcut methods: which candidate is reported, and what it was allowed to see.

A method's search (:meth:`~crlkit.robust.methods.RobustMethod.search`) yields candidates: every
configuration of its grid, at every validation checkpoint along training (early stopping by
validation is one of the choices). A selection rule picks one of them:

==============  ==========================================================  ==========================
rule            score maximised                                             labels it reads
==============  ==========================================================  ==========================
``worst_group`` validation worst-group accuracy (the default)               validation labels + groups
``worst_class`` validation worst-class accuracy (SubpopBench's choice)      validation labels only
``average``     validation accuracy (training-distribution weighted)        validation labels only
``oracle``      test worst-group accuracy: an upper bound, never a result   test labels + groups
==============  ==========================================================  ==========================

Ties go to the higher validation accuracy, then to the earlier step. The test splits stay
sealed (:class:`~crlkit.robust.experiment.TestSplitSealed`) through the search and the
non-oracle choices; they are opened once those choices are final, and each chosen model is
evaluated once. The oracle rule then scores every candidate on ``test_ood`` (that is what
makes it an oracle); it is run after the others, so it cannot change them.
"""

from __future__ import annotations

import time
from typing import Callable

from crlkit.errors import CrlkitError
from crlkit.registry import unknown_choice
from crlkit.robust.experiment import ShortcutData, evaluate
from crlkit.robust.methods import Candidate, make_method

RULES = ("worst_group", "worst_class", "average", "oracle")

#: what each rule's choice read, as written into results.json
SELECTION_LABELS = {
    "worst_group": "validation labels + group labels (label x background)",
    "worst_class": "validation labels only (no group labels in selection)",
    "average": "validation labels only (no group labels in selection)",
    "oracle": "test labels + group labels of test_ood (an upper bound, not a result)",
}


def check_rules(rules) -> tuple[str, ...]:
    """``"all"`` or a rule name, or a sequence of them, as a tuple of rule names (validated)."""
    if isinstance(rules, str):
        rules = RULES if rules == "all" else (rules,)
    rules = tuple(rules)
    for r in rules:
        if r not in RULES:
            raise CrlkitError(unknown_choice("selection rule", r, (*RULES, "all")))
    return rules


def select(candidates: list[Candidate], rule: str) -> Candidate:
    """The candidate with the best validation score under ``rule`` (not ``oracle``)."""
    if rule not in SELECTION_LABELS or rule == "oracle":
        raise CrlkitError(unknown_choice("validation selection rule", rule, RULES[:3]))
    if not candidates:
        raise CrlkitError("no candidate to select from (did every run diverge?)")
    return max(candidates, key=lambda c: (c.val[rule], c.val["average"], -c.step))


def run_search(name: str, data: ShortcutData, seed: int, *, rules=("worst_group",),
               log: Callable[[str], None] | None = None, keep_models: bool = False,
               **options) -> dict[str, dict]:
    """Search method ``name`` (``options`` fix hyperparameters), choose a model per rule, and
    evaluate each chosen model on the test splits. Returns ``{rule: result}`` where a result
    holds the test measures (``RESULT_KEYS``), ``selection``, ``selected`` (hyperparameters and
    step), ``validation`` (the chosen candidate's validation scores), ``labels`` (what the
    method and the selection used), ``candidates`` (how many) and ``seconds``; with
    ``keep_models`` also ``predictor`` (the chosen model, to look at its predictions)."""
    rules = check_rules(rules)
    method = make_method(name, **options)
    data.seal()
    t0 = time.perf_counter()
    candidates = method.search(data, seed=seed, log=log)
    search_seconds = time.perf_counter() - t0
    chosen = {r: select(candidates, r) for r in rules if r != "oracle"}
    data.unseal()  # every validation choice is final
    if "oracle" in rules:
        chosen["oracle"] = _oracle(candidates, data)
    tested: dict[int, dict] = {}
    out = {}
    for r in rules:
        c = chosen[r]
        if id(c) not in tested:
            tested[id(c)] = evaluate(c.model(), data, method=name)
        out[r] = {**tested[id(c)], "selection": r,
                  "selected": {"params": c.params, "step": c.step},
                  "validation": dict(c.val),
                  "labels": {"method": method.uses, "selection": SELECTION_LABELS[r]},
                  "candidates": len(candidates), "seconds": search_seconds}
        if keep_models:
            out[r]["predictor"] = c.model()
    return out


def _oracle(candidates: list[Candidate], data: ShortcutData) -> Candidate:
    from crlkit.robust.classifier import predict_logits
    from crlkit.robust.measures import worst_group_accuracy

    ood = data.test_ood
    y, bg = ood.y.long().cpu().numpy(), ood.factors[:, 3]

    def score(c):
        pred = (predict_logits(c.model(), ood.x) > 0).long().cpu().numpy()
        return worst_group_accuracy(y, pred, bg)

    scores = [score(c) for c in candidates]
    best = max(range(len(candidates)), key=lambda i: (scores[i], candidates[i].val["average"], -candidates[i].step))
    return candidates[best]


def run_method(name: str, data: ShortcutData, seed: int, *, selection: str = "worst_group",
               log: Callable[[str], None] | None = None, keep_models: bool = False, **options) -> dict:
    """:func:`run_search` for one rule: that rule's result."""
    return run_search(name, data, seed, rules=(selection,), log=log, keep_models=keep_models,
                      **options)[selection]
