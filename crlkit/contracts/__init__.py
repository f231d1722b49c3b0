"""Assumption contracts: what a dataset offers, what a method needs and guarantees, and the
check between them that runs before any training.

>>> from crlkit.contracts import check
>>> c = check("ivae", make_dataset("synthetic", segments=5))
>>> c.guarantee, c.mismatches
('none ...', (('an auxiliary variable u with >= 2n + 1 values (n latents)', 'u takes 5 values, ...'),))

- :mod:`crlkit.contracts.data`: :class:`DataContract` and the contracts of the datasets;
- :mod:`crlkit.contracts.methods`: :data:`METHOD_CONTRACTS`, one row per registered model.

:func:`check` compares the two; :func:`enforce` is what the trainer and ``crlkit identify`` call:
it raises a one-line :class:`~crlkit.errors.CrlkitError` naming the first violated requirement
(always for a structural one, for an assumption unless ``allow_mismatch``) and otherwise returns
the check as a dict that the run's config, summary and results carry.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from crlkit.contracts.data import (DATASET_CONTRACTS, MIXING_CLASSES, DataContract, dataset_contract,
                                   format_contract, synthetic_contract)
from crlkit.contracts.methods import (METHOD_CONTRACTS, Context, MethodContract, Requirement, contract_rows,
                                      method_contract)
from crlkit.errors import CrlkitError


@dataclass(frozen=True)
class ContractCheck:
    """The outcome of :func:`check` for one (method, dataset) pair."""

    method: str                 # registered model name
    dataset: str                # dataset name
    admitted: bool              # every structural requirement holds (the method can train)
    refused: tuple              # (requirement, reason) of the structural requirements that fail
    mismatches: tuple           # (requirement, reason) of the assumptions that fail
    unverified: tuple           # (requirement, reason) that the dataset's contract cannot settle
    guarantee: str              # what applies: the method's guarantee, or "none" with the reason
    theorem: str                # the result the guarantee rests on
    paper: str                  # where it is proved

    @property
    def ok(self) -> bool:
        """Admitted and every assumption met: the guarantee applies."""
        return self.admitted and not self.mismatches

    def line(self) -> str:
        """One line for a terminal: the guarantee that applies, or the first problem."""
        if self.refused:
            req, why = self.refused[0]
            return f"{self.method} on {self.dataset}: refused: needs {req}; {why}"
        if self.mismatches:
            req, why = self.mismatches[0]
            return f"{self.method} on {self.dataset}: assumption not met: {req}; {why}"
        caveat = f"; unverified: {self.unverified[0][1]}" if self.unverified else ""
        return f"{self.method} on {self.dataset}: guarantee: {self.guarantee} ({self.theorem}){caveat}"

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["refused"] = [{"requirement": r, "reason": w} for r, w in self.refused]
        out["mismatches"] = [{"requirement": r, "reason": w} for r, w in self.mismatches]
        out["unverified"] = [{"requirement": r, "reason": w} for r, w in self.unverified]
        out["ok"] = self.ok
        return out


def _sampler_defaults(kind: str) -> dict[str, Any]:
    import inspect

    from crlkit.data.samplers import SAMPLERS, _load_all

    _load_all()
    if kind not in SAMPLERS:
        return {}
    params = inspect.signature(SAMPLERS.get(kind).__init__).parameters
    skip = {"self", "dataset", "batch_size", "seed", "device"}
    return {n: p.default for n, p in params.items() if n not in skip and p.default is not inspect.Parameter.empty}


def check(method: str, dataset, *, model_config: Any = None, sampler_options: dict | None = None) -> ContractCheck:
    """Compare ``method``'s contract with ``dataset``'s.

    Parameters
    ----------
    method : str
        A registered model name.
    dataset : GroundTruthData
        The dataset object (its contract is :func:`dataset_contract`).
    model_config : dataclass or dict, optional
        The model's resolved config (``num_latents``, ``p``, ...); the defaults when omitted.
    sampler_options : dict, optional
        Options of the batch sampler (``conditional``, ``intervention``, ...); defaults filled in.

    Returns
    -------
    ContractCheck
        ``refused`` lists failed structural requirements, ``mismatches`` failed assumptions;
        ``guarantee`` is the method's when both are empty, else ``"none: ..."``.
    """
    from crlkit.models import get_model_class

    cls = get_model_class(method)  # unknown names raise, listing the registered ones
    name = getattr(dataset, "name", "") or type(dataset).__name__
    if method not in METHOD_CONTRACTS:  # registered without a declared contract: nothing to check
        return ContractCheck(method=method, dataset=name, admitted=True, refused=(), mismatches=(),
                             unverified=(("a declared contract", f"{method} has no row in METHOD_CONTRACTS"),),
                             guarantee="undeclared", theorem="", paper="")
    mc = method_contract(method)
    if model_config is None:
        model_config = cls.Config() if cls.Config is not None else {}
    model = dataclasses.asdict(model_config) if dataclasses.is_dataclass(model_config) else dict(model_config)
    sampler = {**_sampler_defaults(cls.batch_kind), **dict(sampler_options or {})}
    data = dataset_contract(dataset)
    ctx = Context(data=data, model=model, sampler=sampler)
    refused, mismatches, unverified = [], [], []
    for req in mc.needs:
        why = req.test(ctx)
        if why is None:
            continue
        if why.startswith("?"):
            unverified.append((req.name, why[1:]))
        else:
            (refused if req.structural else mismatches).append((req.name, why))
    if refused:
        guarantee = f"none: cannot train ({refused[0][1]})"
    elif mismatches:
        guarantee = f"none: {mismatches[0][0]} is not met ({mismatches[0][1]})"
    else:
        guarantee = mc.guarantee_for(ctx)
    return ContractCheck(method=method, dataset=name, admitted=not refused, refused=tuple(refused),
                         mismatches=tuple(mismatches), unverified=tuple(unverified), guarantee=guarantee, theorem=mc.theorem, paper=mc.paper)


def enforce(method: str, dataset, *, model_config: Any = None, sampler_options: dict | None = None,
            allow_mismatch: bool = False) -> dict[str, Any]:
    """:func:`check`, then stop on what it finds: a failed structural requirement always raises
    :class:`CrlkitError`, a failed assumption unless ``allow_mismatch``; each with one line that
    names the requirement. Returns :meth:`ContractCheck.to_dict` (with ``allow_mismatch``)."""
    c = check(method, dataset, model_config=model_config, sampler_options=sampler_options)
    if c.refused:
        raise CrlkitError(c.line())
    if c.mismatches and not allow_mismatch:
        raise CrlkitError(c.line() + " (pass --allow-mismatch to train anyway, without the guarantee)")
    out = c.to_dict()
    out["allow_mismatch"] = bool(allow_mismatch)
    return out


def contract_line(d: dict[str, Any]) -> str:
    """One line from a check's dict (as :func:`enforce` returns and results carry)."""
    head = f"contract: {d['method']} on {d['dataset']}: "
    if d.get("mismatches"):
        m = d["mismatches"][0]
        return head + f"MISMATCH (run with --allow-mismatch): {m['requirement']}: {m['reason']}; guarantee: none"
    extra = f"; unverified: {d['unverified'][0]['reason']}" if d.get("unverified") else ""
    return head + f"guarantee: {d['guarantee']} ({d['theorem']}){extra}"


def preview(model: str, dataset: str, *, data_options: dict | None = None, overrides: dict | None = None,
            allow_mismatch: bool = False) -> str:
    """:func:`enforce` for a model and a dataset given by name and options, as the trainer will
    see them, before any training; returns :func:`contract_line` (raises as ``enforce``)."""
    from crlkit.data import dataset_from_options
    from crlkit.train import resolve_settings

    _, model_cfg, _, sampler_opts = resolve_settings(model, overrides)
    ds, _ = dataset_from_options(str(dataset), data_options)
    return contract_line(enforce(model, ds, model_config=model_cfg, sampler_options=sampler_opts,
                                 allow_mismatch=allow_mismatch))


def method_table_rows() -> list[dict[str, Any]]:
    """:func:`contract_rows`, for every registered model (a model without a declared contract is
    listed with ``guarantee`` "undeclared")."""
    from crlkit.models import list_models

    rows = {r["model"]: r for r in contract_rows()}
    return [rows.get(m, {"model": m, "needs": "", "guarantee": "undeclared", "theorem": "", "paper": ""})
            for m in list_models()]


def describe_dataset(ds) -> str:
    """One line: the contract of dataset object ``ds`` (for ``crlkit data list``)."""
    return format_contract(dataset_contract(ds))


__all__ = ["ContractCheck", "Context", "DATASET_CONTRACTS", "DataContract", "METHOD_CONTRACTS", "MIXING_CLASSES",
           "MethodContract", "Requirement", "check", "contract_line", "contract_rows", "dataset_contract", "describe_dataset",
           "enforce", "format_contract", "method_contract", "method_table_rows", "preview", "synthetic_contract"]
