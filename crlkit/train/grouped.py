"""Grouped training: K models of one method trained in one process as one stacked model.

>>> from crlkit import train_many
>>> summaries = train_many("beta_vae", "dsprites", seeds=range(8), steps=300_000,
...                        out_dir="runs/bvae", device="cuda")   # runs/bvae/seed_0 ... seed_7

Each member is the model its single run (:func:`crlkit.train.train`) would train, and each
is written to its own run directory with the same ``config.json``, ``checkpoint.pt``,
``log.csv`` and ``summary.json``; ``crlkit.load``, ``crlkit evaluate`` and ``--resume`` read
it like a single run (``summary.json`` has one more key, ``"group"``).

How a group trains (``mode="grouped"``):

- every member is built from its own seed exactly as its single run builds it, then the
  parameters are stacked into ``(K, ...)`` tensors; one :func:`torch.func.vmap` over
  :func:`torch.func.functional_call` of the method's own ``loss`` computes the K losses, their
  sum is back-propagated (member k's gradient is that of its own loss) and one optimizer per
  optimizer name steps all K (Adam is elementwise, so a stacked Adam is K Adams);
- each member keeps its own batch sampler (seeded as in its single run; for ``"single"``
  batches of datasets that render without randomness, the K factor draws are rendered in one
  call on the device), and its own noise generator: the noise a method draws through
  ``Method.randn_like`` / ``Method.rand`` is drawn per member outside ``vmap``, in the order
  a single step draws it (recorded once from a single step), and handed in, so member k sees
  the noise of its single run;
- members may differ in numeric model hyperparameters (``variants=[{"beta": 1}, {"beta": 4}]``),
  passed into ``vmap`` as per-member scalars; parameter shapes, the training settings and the
  sampler options must agree.

A method whose ``training_step`` is its own (FactorVAE's alternating discriminator update)
needs a grouped counterpart here (:data:`GROUPED_STEPS`); a method that cannot be grouped
(its own step with no counterpart, callbacks, noise from torch's global RNG, per-member
differences that cannot be stacked, or a loss that fails under ``vmap``) trains as
sequential single runs, with the reason logged and kept in each summary's ``"group"``.

On the CPU, sequential single runs measured faster than a group (bench/bench_grouped.py,
bench/RESULTS.md), so ``mode="auto"`` trains sequentially there and as groups on a GPU.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import numbers
import os
import platform
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vmap

from crlkit.data import GroundTruthData
from crlkit.data.samplers import SingleSampler, make_sampler
from crlkit.errors import CrlkitError
from crlkit.files import atomic_write_json, jsonable
from crlkit.models.base import Method
from crlkit.train import trainer as _trainer
from crlkit.train.callbacks import Callback, Checkpoint, TensorBoard, TrainingDiverged
from crlkit.train.trainer import (Trainer, _WriteConfig, check_run_dir, process_settings, read_run_config,
                                  resolve_settings, train)

log = logging.getLogger("crlkit.train.grouped")

MODES = ("auto", "grouped", "sequential")
PRECISIONS = ("fp32", "bf16")


# --------------------------------------------------------------------------------------------
# public entry point
# --------------------------------------------------------------------------------------------
def train_many(model: str, dataset: str | GroundTruthData, *, steps: int, out_dir: str | os.PathLike | None = None,
               seeds: Iterable[int] | None = None, variants: Sequence[dict[str, Any]] | None = None,
               overrides: dict[str, Any] | None = None, run_dirs: Sequence[str | os.PathLike] | None = None,
               data_options: dict[str, Any] | None = None, device: str = "cpu", resume: bool = False,
               overwrite: bool = False, progress: bool | None = None, mode: str = "auto", group_size: int | None = None,
               precision: str = "fp32", allow_mismatch: bool = False) -> list[dict]:
    """Train several models of one method, as groups where that pays, each to its own run directory.

    Parameters
    ----------
    model, dataset, steps, overrides, data_options, device, resume, overwrite, progress
        As for :func:`crlkit.train.train`; ``overrides`` apply to every member.
    out_dir : path
        Parent directory: member ``(variant i, seed s)`` writes ``out_dir/seed_s`` (one
        variant) or ``out_dir/variant_i/seed_s``. Not needed when ``run_dirs`` is given.
    seeds : iterable of int
        One member per seed (default ``[0]``).
    variants : list of dict
        Per-variant overrides laid over ``overrides``; members are every variant x every seed.
    run_dirs : list of path
        One run directory per member (variant-major order), instead of ``out_dir``'s layout.
    mode : {"auto", "grouped", "sequential"}
        ``"grouped"``: stacked training where the method allows it (else sequential, with
        the reason logged); ``"sequential"``: one single run after another; ``"auto"``:
        sequential on the CPU (measured faster there), grouped on CUDA.
    group_size : int or None
        Members per group; ``None``: all on the CPU, as many as fit in 80% of free memory on
        CUDA (measured from a probe group of two).
    precision : {"fp32", "bf16"}
        ``"bf16"``: the networks compute in bf16 (weights, optimizer and loss terms stay
        float32); grouped runs only.

    Returns
    -------
    list of dict
        Each member's ``summary.json``, in member order, with ``"group"``: ``{"mode", "size",
        "reason", "images_per_second_total", "peak_memory_per_model_mb"}``.
    """
    steps = int(steps)
    if steps < 0:
        raise CrlkitError(f"steps must be >= 0; got {steps}")
    if mode not in MODES:
        raise CrlkitError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    if precision not in PRECISIONS:
        raise CrlkitError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    if group_size is not None and int(group_size) < 1:
        raise CrlkitError(f"group_size must be >= 1; got {group_size}")
    seeds = [0] if seeds is None else [int(s) for s in seeds]
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise CrlkitError(f"seeds must be distinct integers >= 0; got {seeds}")
    variant_list = [dict(v) for v in variants] if variants is not None else [{}]
    if not variant_list:
        raise CrlkitError("variants must hold at least one dict of overrides")
    members = [(s, {**(overrides or {}), **v}) for v in variant_list for s in seeds]
    if run_dirs is not None:
        dirs = [Path(d) for d in run_dirs]
        if len(dirs) != len(members):
            raise CrlkitError(f"run_dirs needs one directory per member ({len(members)}); got {len(dirs)}")
    elif out_dir is None:
        raise CrlkitError("train_many needs out_dir (or run_dirs)")
    elif len(variant_list) == 1:
        dirs = [Path(out_dir) / f"seed_{s}" for s, _ in members]
    else:
        dirs = [Path(out_dir) / f"variant_{i}" / f"seed_{s}" for i in range(len(variant_list)) for s in seeds]
    dev = _trainer._device(device)
    from crlkit.contracts import enforce

    ds, ds_name, ds_opts = _trainer._resolve_dataset(dataset, data_options)
    for _, o in members:  # every member's contract, before anything trains
        _, model_cfg, _, sampler_opts = resolve_settings(model, o)
        enforce(model, ds, model_config=model_cfg, sampler_options=sampler_opts, allow_mismatch=allow_mismatch)
    grouped = mode == "grouped" or (mode == "auto" and dev.type == "cuda")
    if not grouped:
        why = "mode='sequential'" if mode == "sequential" else "mode='auto' on the CPU, where single runs measured faster"
        return _sequential(model, dataset, members, dirs, steps=steps, data_options=data_options, device=device,
                           resume=resume, overwrite=overwrite, progress=progress, reason=why,
                           allow_mismatch=allow_mismatch)

    settings = [resolve_settings(model, o) for _, o in members]
    reason = _why_not_shared(settings)
    if reason is None and len(members) > 1:
        try:
            size = int(group_size) if group_size is not None else _fit_group_size(model, ds, settings, seeds, dev,
                                                                                  precision)
        except _NotGroupable:  # the group below finds and logs the reason
            size = len(members)
    else:
        size = len(members)
    summaries: list[dict] = []
    diverged: list[str] = []
    for lo in range(0, len(members), size):
        part = slice(lo, lo + size)
        if reason is None:
            try:
                group = _Group(settings[part], [s for s, _ in members[part]], ds, dev, precision=precision)
                part_reason = group.why_not()
            except _NotGroupable as e:
                part_reason = str(e)
        else:
            part_reason = reason
        if part_reason is not None:
            log.warning("%s: training %d member(s) as sequential single runs: %s", model, len(members[part]),
                        part_reason)
            summaries += _sequential(model, dataset, members[part], dirs[part], steps=steps,
                                     data_options=data_options, device=device, resume=resume,
                                     overwrite=overwrite, progress=progress, reason=part_reason,
                                     allow_mismatch=allow_mismatch)
            continue
        out, bad = _train_group(model, group, members[part], dirs[part], ds_name, ds_opts, steps=steps,
                                resume=resume, overwrite=overwrite, progress=progress)
        summaries += out
        diverged += bad
    if diverged:
        raise TrainingDiverged("; ".join(diverged) + " (the other members finished and were written)")
    return summaries


def parse_seeds(text: str) -> list[int]:
    """``"0-7"`` -> [0, ..., 7]; ``"1,3,5"`` and ``"0-3,8"`` work too (for ``--seeds``)."""
    out: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        try:
            if "-" in part:
                a, b = (int(v) for v in part.split("-", 1))
                if b < a:
                    raise ValueError
                out += list(range(a, b + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise CrlkitError(f"--seeds takes seeds >= 0 as a range or list, e.g. 0-7 or 0,2,5; got {text!r}") from None
    if any(s < 0 for s in out) or len(set(out)) != len(out):
        raise CrlkitError(f"--seeds must be distinct seeds >= 0; got {text!r}")
    return out


# --------------------------------------------------------------------------------------------
# sequential fallback
# --------------------------------------------------------------------------------------------
def _sequential(model, dataset, members, dirs, *, steps, data_options, device, resume, overwrite, progress,
                reason, allow_mismatch=False) -> list[dict]:
    summaries = []
    for (seed, overrides), out in zip(members, dirs):
        s = train(model, dataset, steps=steps, seed=seed, out_dir=out, overrides=overrides, data_options=data_options,
                  device=device, resume=resume, overwrite=overwrite, progress=progress, allow_mismatch=allow_mismatch)
        s["group"] = {"mode": "sequential", "size": 1, "reason": reason,
                      "images_per_second_total": s.get("images_per_second", 0.0), "peak_memory_per_model_mb": None}
        atomic_write_json(Path(out) / "summary.json", s)
        summaries.append(s)
    return summaries


# --------------------------------------------------------------------------------------------
# what can be grouped
# --------------------------------------------------------------------------------------------
class _NotGroupable(Exception):
    """The reason a set of members trains as single runs."""


def _why_not_shared(settings) -> str | None:
    """Members must share the method, training settings and sampler options; model configs
    may differ only in numeric fields."""
    cls0, cfg0, tcfg0, sopts0 = settings[0]
    for cls, cfg, tcfg, sopts in settings[1:]:
        if tcfg != tcfg0:
            diff = [f.name for f in dataclasses.fields(tcfg) if getattr(tcfg, f.name) != getattr(tcfg0, f.name)]
            return f"members differ in training settings {diff} (one stacked optimizer and one batch size)"
        if sopts != sopts0:
            return f"members differ in sampler options ({sopts0} vs {sopts})"
        for name in _varying_fields([cfg0, cfg]):
            a, b = getattr(cfg0, name), getattr(cfg, name)
            if not (_is_number(a) and _is_number(b)):
                return f"members differ in the non-numeric model setting {name!r} ({a!r} vs {b!r})"
    return None


def _is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _varying_fields(cfgs) -> list[str]:
    return [f.name for f in dataclasses.fields(cfgs[0]) if any(getattr(c, f.name) != getattr(cfgs[0], f.name)
                                                               for c in cfgs[1:])]


def _plain_attributes(net: nn.Module) -> dict[str, Any]:
    """Non-tensor attributes of every submodule (set at build time from the config)."""
    skip = {"config", "noise", "training", "run_config"}
    out = {}
    for prefix, mod in net.named_modules():
        for k, v in vars(mod).items():
            if k.startswith("_") or k in skip or isinstance(v, (torch.Tensor, nn.Module)):
                continue
            out[f"{prefix}.{k}"] = v
    return out


# --------------------------------------------------------------------------------------------
# one group
# --------------------------------------------------------------------------------------------
class _Call(nn.Module):
    """Calls ``fn(net, *args)`` so that :func:`functional_call` can swap ``net``'s tensors."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, fn: Callable, *args):
        return fn(self.net, *args)


class _Group:
    """K members of one method: their single-run pieces (nets, optimizers, samplers, noise
    generators) and the stacked tensors that train them together."""

    def __init__(self, settings, seeds: list[int], ds: GroundTruthData, dev: torch.device, *,
                 precision: str = "fp32"):
        self.cls, cfg0, self.train_cfg, self.sampler_opts = settings[0]
        self.cfgs = [s[1] for s in settings]
        self.seeds = list(seeds)
        self.K = len(seeds)
        self.ds, self.dev = ds, dev
        self.bf16 = precision == "bf16"
        self.member_seeds = [_trainer._seeds(s) for s in seeds]
        # every member exactly as its single run builds it
        self.nets: list[Method] = []
        for cfg, sd in zip(self.cfgs, self.member_seeds):
            net = self._build(cfg, sd["init"])
            net.train()
            net.noise = torch.Generator(device=dev)
            net.noise.manual_seed(sd["noise"])
            self.nets.append(net)
        self.optimizers = [net.configure_optimizers(self.train_cfg) for net in self.nets]
        mult = int(getattr(self.cls, "sampler_batch_multiplier", 1))
        self.batch = self.train_cfg.batch_size * mult
        self.samplers = [make_sampler(self.cls.batch_kind, ds, batch_size=self.batch, seed=sd["sampler"], device=dev,
                                      **self.sampler_opts) for sd in self.member_seeds]
        self.template = self.nets[0]
        self.call = _Call(self.template)
        self.varying = _varying_fields(self.cfgs)
        self.step_fn = GROUPED_STEPS.get(self._step_kind())
        self._fast_render = self._renders_in_one_call()

    def _build(self, cfg, init_seed: int) -> Method:
        """A member as its single run builds it, memory format included: a checkpoint's
        optimizer moments must have their parameter's strides (fused Adam reads them flat)."""
        net = _trainer._build_model(self.cls, cfg, self.ds.observation_shape, init_seed)
        if _trainer._is_image(self.ds) and self.train_cfg.channels_last:
            return net.to(self.dev, memory_format=torch.channels_last)
        return net.to(self.dev)

    # --- checks ---------------------------------------------------------------------------
    def _step_kind(self) -> str | None:
        own = self.cls.training_step
        if own is Method.training_step:
            return "loss"
        for kind, owner in _STEP_OWNERS.items():
            if own is owner():
                return kind
        return None

    def why_not(self) -> str | None:
        """None when this group can train stacked (its tensors are then stacked); else the reason."""
        name = self.cls.name
        if self.step_fn is None:
            return f"{name} has its own training_step and no grouped counterpart in crlkit.train.grouped"
        if self.template.callbacks(self.train_cfg):
            return f"{name} adds trainer callbacks, which act on one model"
        shapes = [{n: tuple(p.shape) for n, p in net.named_parameters()} for net in self.nets]
        if any(s != shapes[0] for s in shapes[1:]):
            return "members' parameter shapes differ (a shape-changing setting varies)"
        attrs = [_plain_attributes(net) for net in self.nets]
        if any(a != attrs[0] for a in attrs[1:]):
            diff = sorted(k for k in attrs[0] if any(a.get(k) != attrs[0][k] for a in attrs[1:]))
            return f"members differ in build-time attributes {diff}"
        groups = [_optimizer_layout(net, opts) for net, opts in zip(self.nets, self.optimizers)]
        if any(g != groups[0] for g in groups[1:]):
            return "members' optimizers differ (learning rates or betas set by a varying setting)"
        try:
            self.schedule = self._record_noise_schedule()
        except _NotGroupable as e:
            return str(e)
        self._stack()
        try:
            self._dry_run()
        except Exception as e:  # a loss that vmap cannot batch: train the members one by one
            first = (str(e).strip().splitlines() or [""])[0][:200]
            return f"{name}'s step fails under torch.func.vmap ({type(e).__name__}: {first})"
        return None

    def _record_noise_schedule(self) -> list[tuple]:
        """The (kind, shape, dtype) of every noise draw of one step, from one single step of a
        fresh member on a throwaway batch; also refuses methods that use torch's global RNG."""
        sd = self.member_seeds[0]
        probe = self._build(self.cfgs[0], sd["init"])
        probe.train()
        probe.noise = torch.Generator(device=self.dev)
        probe.noise.manual_seed(0)
        opts = probe.configure_optimizers(self.train_cfg)
        batch = self._throwaway_batch()
        schedule: list[tuple] = []
        cls = type(probe)

        def randn_like(t):
            schedule.append(("randn", tuple(t.shape), t.dtype))
            return cls.randn_like(probe, t)

        def rand(*shape, device=None):
            schedule.append(("rand", tuple(int(s) for s in shape), torch.float32))
            return cls.rand(probe, *shape, device=device)

        probe.randn_like, probe.rand = randn_like, rand
        cpu_rng = torch.get_rng_state()
        cuda_rng = torch.cuda.get_rng_state(self.dev) if self.dev.type == "cuda" else None
        try:  # in float32: with precision="bf16" the networks' outputs are float32 too
            probe.training_step(batch, 0, opts)
        except Exception as e:
            raise _NotGroupable(f"one step of {self.cls.name} failed while recording its noise ({e})") from None
        if not torch.equal(cpu_rng, torch.get_rng_state()) or (
                cuda_rng is not None and not torch.equal(cuda_rng, torch.cuda.get_rng_state(self.dev))):
            torch.set_rng_state(cpu_rng)
            raise _NotGroupable(f"{self.cls.name} draws noise from torch's global RNG "
                                "(not through Method.randn_like / Method.rand)")
        return schedule

    def _throwaway_batch(self) -> dict[str, torch.Tensor]:
        s = make_sampler(self.cls.batch_kind, self.ds, batch_size=self.batch, seed=0, device=self.dev,
                         **self.sampler_opts)
        return next(s)

    def _renders_in_one_call(self) -> bool:
        """True when the K members' ``"single"`` batches can be rendered in one call: the
        dataset's observations use no randomness, so factors drawn per member (as each single
        run draws them) and rendered together give each member its single run's images."""
        if not all(type(s) is SingleSampler for s in self.samplers):
            return False
        ds = self.ds
        if type(ds).sample is not GroundTruthData.sample:
            return False
        rng = np.random.default_rng(0)
        before = json.dumps(rng.bit_generator.state)
        try:
            ds.observations_from_factors(ds.sample_factors(2, np.random.default_rng(1)), rng, device=self.dev)
        except Exception:
            return False
        return json.dumps(rng.bit_generator.state) == before

    # --- stacking -------------------------------------------------------------------------
    def _stack(self) -> None:
        names = [n for n, _ in self.template.named_parameters()]
        self.params = {n: torch.stack([net.get_parameter(n).detach() for net in self.nets]).contiguous()
                       .requires_grad_(True) for n in names}
        self.buffers = {n: torch.stack([net.get_buffer(n) for net in self.nets])
                        for n, _ in self.template.named_buffers()}
        self.hyper = {f: torch.tensor([float(getattr(c, f)) for c in self.cfgs], device=self.dev)
                      for f in self.varying}
        self.opts: dict[str, torch.optim.Optimizer] = {}
        self.opt_names: dict[str, list[str]] = {}
        for oname, layout in _optimizer_layout(self.template, self.optimizers[0]).items():
            opt0 = self.optimizers[0][oname]
            groups = [{"params": [self.params[n] for n in g_names], **dict(hp)} for g_names, hp in layout]
            self.opts[oname] = type(opt0)(groups, **opt0.defaults)
            self.opt_names[oname] = [n for g_names, _ in layout for n in g_names]
        # member optimizer states (resume) -> stacked states
        for oname, opt in self.opts.items():
            states = [o[oname].state_dict()["state"] for o in self.optimizers]
            if not states[0]:
                continue
            stacked = {}
            for i, p in enumerate(p for g in opt.param_groups for p in g["params"]):
                stacked[i] = {k: (torch.stack([s[i][k] for s in states]).contiguous() if _param_state(v, p[0])
                                  else v) for k, v in states[0][i].items()}
            opt.load_state_dict({"state": stacked, "param_groups": opt.state_dict()["param_groups"]})

    def sync_members(self, members: Iterable[int] | None = None) -> None:
        """Write the stacked weights and optimizer states back into the own net and optimizers
        of each of ``members`` (default all), before checkpointing them."""
        members = list(range(self.K) if members is None else members)
        with torch.no_grad():
            for k in members:
                net = self.nets[k]
                for n, p in net.named_parameters():
                    p.copy_(self.params[n][k])
                for n, b in net.named_buffers():
                    b.copy_(self.buffers[n][k])
        for oname, opt in self.opts.items():
            sd = opt.state_dict()
            params = [p for g in opt.param_groups for p in g["params"]]
            for k in members:
                opts = self.optimizers[k]
                own = [p for g in opts[oname].param_groups for p in g["params"]]  # member k's, in the same order
                state = {i: {key: (torch.empty_like(own[i]).copy_(v[k]) if _param_state(v, params[i])
                                   else (v.clone() if isinstance(v, torch.Tensor) else v))
                             for key, v in st.items()} for i, st in sd["state"].items()}
                opts[oname].load_state_dict({"state": state, "param_groups": opts[oname].state_dict()["param_groups"]})

    # --- one step -------------------------------------------------------------------------
    def next_batch(self) -> dict[str, torch.Tensor]:
        """(K, B, ...) tensors: member k's batch is its single run's."""
        if self._fast_render:
            factors = [s.dataset.sample_factors(s.batch_size, s.rng) for s in self.samplers]
            f = np.concatenate(factors)
            x = self.samplers[0].to_tensor(self.ds.observations_from_factors(f, self.samplers[0].rng,
                                                                            device=self.dev))
            fdtype = torch.long if self.ds.discrete else torch.float32
            return {"x": x.reshape(self.K, self.batch, *x.shape[1:]),
                    "factors": self.samplers[0].to_tensor(f, fdtype).reshape(self.K, self.batch, -1)}
        batches = [next(s) for s in self.samplers]
        return {k: torch.stack([b[k] for b in batches]) for k in batches[0]}

    def draw_noise(self) -> list[torch.Tensor]:
        """Each member's noise for one step, from its own generator, in the single step's order."""
        out = []
        for kind, shape, dtype in self.schedule:
            if kind == "randn":
                out.append(torch.stack([torch.randn(shape, generator=net.noise, device=self.dev, dtype=dtype)
                                        for net in self.nets]))
            else:
                out.append(torch.stack([torch.rand(*shape, generator=net.noise, device=self.dev)
                                        for net in self.nets]))
        return out

    def step(self, batch, step: int) -> dict[str, torch.Tensor]:
        """One update of every member; returns ``{term: (K,) tensor}`` (detached)."""
        noise = self.draw_noise()
        tape = _Tape(noise)
        terms = self.step_fn(self, batch, step, tape, dry=False)
        if tape.used != len(noise):
            raise CrlkitError(f"{self.cls.name}: a grouped step drew {tape.used} noise tensors where its single "
                              f"step drew {len(noise)}; train it with mode='sequential'")
        return terms

    def _dry_run(self) -> None:
        """One grouped forward and backward on a throwaway batch, with no optimizer step."""
        b = self._throwaway_batch()
        batch = {k: v.unsqueeze(0).expand(self.K, *v.shape).contiguous() for k, v in b.items()}
        gen = torch.Generator(device=self.dev)
        gen.manual_seed(0)
        noise = [(torch.randn if kind == "randn" else torch.rand)((self.K, *shape), generator=gen, device=self.dev,
                                                                  dtype=dtype)
                 for kind, shape, dtype in self.schedule]
        before = {n: p.detach().clone() for n, p in self.params.items()}
        self.step_fn(self, batch, 0, _Tape(noise), dry=True)
        for opt in self.opts.values():
            opt.zero_grad(set_to_none=True)
        assert all(torch.equal(before[n], p) for n, p in self.params.items())

    def member_view(self, hyper: dict[str, torch.Tensor], tape: "_Tape", noise: list[torch.Tensor]):
        """Inside vmap: the template's config holds this member's varying hyperparameters and
        its noise comes from ``noise`` (this member's slice of the step's draws)."""
        return _member_view(self.template, hyper, tape, noise)

    def precision(self):
        """With ``precision="bf16"``: the method's networks (its submodules) compute in bf16 on
        bf16 copies of the float32 weights, their outputs come back as float32, and the loss
        terms are computed in float32. (``torch.autocast`` does not reach convolutions under
        ``vmap``: on the CPU their output stayed float32-exact under it.)"""
        return _bf16_children(self.template) if self.bf16 else contextlib.nullcontext()

    def functional(self, params, buffers, fn: Callable, *args):
        return functional_call(self.call, {**{f"net.{n}": p for n, p in params.items()},
                                           **{f"net.{n}": b for n, b in buffers.items()}}, (fn, *args))

    def trainable(self, opt_name: str) -> dict[str, torch.Tensor]:
        """Stacked parameters with those outside optimizer ``opt_name`` detached."""
        keep = set(self.opt_names[opt_name])
        out = {n: (p if n in keep else p.detach()) for n, p in self.params.items()}
        if self.bf16:  # submodules' weights (names with a dot) as bf16 copies; gradients reach the float32 ones
            out = {n: (p.to(torch.bfloat16) if "." in n and p.is_floating_point() else p) for n, p in out.items()}
        return out

    def update(self, opt_name: str, total: torch.Tensor, dry: bool) -> None:
        opt = self.opts[opt_name]
        opt.zero_grad(set_to_none=True)
        total.sum().backward()  # d(sum_k loss_k) / d theta_k = d loss_k / d theta_k
        if not dry:
            opt.step()


def _cast(tree, dtype):
    if isinstance(tree, torch.Tensor):
        return tree.to(dtype) if tree.is_floating_point() else tree
    if isinstance(tree, (tuple, list)):
        return type(tree)(_cast(t, dtype) for t in tree)
    if isinstance(tree, dict):
        return {k: _cast(v, dtype) for k, v in tree.items()}
    return tree


@contextlib.contextmanager
def _bf16_children(net: nn.Module):
    """Cast the floating inputs of ``net``'s direct submodules to bf16 and their outputs back
    to float32 (see :meth:`_Group.precision`)."""
    handles = []
    for child in net.children():
        handles.append(child.register_forward_pre_hook(
            lambda m, args, kwargs: (_cast(args, torch.bfloat16), _cast(kwargs, torch.bfloat16)), with_kwargs=True))
        handles.append(child.register_forward_hook(lambda m, args, out: _cast(out, torch.float32)))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


class _Tape:
    """How many of a step's noise tensors the vmapped calls have taken so far."""

    def __init__(self, noise: list[torch.Tensor]):
        self.noise = noise
        self.used = 0

    def rest(self) -> list[torch.Tensor]:
        return self.noise[self.used:]


@contextlib.contextmanager
def _member_view(net: Method, hyper, tape: _Tape, noise: list[torch.Tensor]):
    it = iter(noise)

    def take(shape):
        try:
            t = next(it)
        except StopIteration:
            raise CrlkitError(f"{net.name}: a grouped step drew more noise than its single step") from None
        if tuple(t.shape) != tuple(shape):
            raise CrlkitError(f"{net.name}: grouped noise of shape {tuple(t.shape)} where the step asks {tuple(shape)}")
        tape.used += 1
        return t

    config = net.config
    net.randn_like = lambda t: take(t.shape).to(t.dtype)
    net.rand = lambda *shape, device=None: take(shape)
    if hyper:
        object.__setattr__(net, "config", dataclasses.replace(config, **hyper))
    try:
        yield net
    finally:
        del net.randn_like, net.rand
        object.__setattr__(net, "config", config)


def _param_state(v, p: torch.Tensor) -> bool:
    """An optimizer state tensor shaped like its (stacked) parameter (Adam's moments)."""
    return isinstance(v, torch.Tensor) and v.dim() > 0 and tuple(v.shape) == tuple(p.shape)


def _optimizer_layout(net: nn.Module, optimizers) -> dict[str, list[tuple[list[str], tuple]]]:
    """``{optimizer name: [(parameter names, hyperparameters) per group]}``: what stacking needs
    to rebuild a member's optimizers over the stacked tensors."""
    names = {id(p): n for n, p in net.named_parameters()}
    out = {}
    for oname, opt in optimizers.items():
        groups = []
        for g in opt.param_groups:
            hp = tuple(sorted((k, v if not isinstance(v, torch.Tensor) else float(v))
                              for k, v in g.items() if k != "params"))
            groups.append(([names[id(p)] for p in g["params"]], hp))
        out[oname] = groups
    return out


# --------------------------------------------------------------------------------------------
# grouped steps: the default (one loss, one optimizer) and methods with their own step
# --------------------------------------------------------------------------------------------
def _loss_step(group: _Group, batch, step: int, tape: _Tape, *, dry: bool) -> dict[str, torch.Tensor]:
    """Grouped :meth:`Method.training_step`: loss -> backward -> ``optimizers["main"]``."""

    def one(params, buffers, hyper, batch, noise):
        with group.member_view(hyper, tape, noise):
            total, terms = group.functional(params, buffers, lambda net, b: net.loss(b, step), batch)
        return total, terms

    with group.precision():
        total, terms = vmap(one)(group.trainable("main"), group.buffers, group.hyper, batch, tape.rest())
    group.update("main", total, dry)
    return {"loss": total.detach(), **{k: v.detach() for k, v in terms.items()}}


def _factor_vae_step(group: _Group, batch, step: int, tape: _Tape, *, dry: bool) -> dict[str, torch.Tensor]:
    """Grouped ``FactorVAE.training_step``: the VAE update on the first half of the batch
    (discriminator frozen), then the discriminator update on codes of the first half against
    permuted codes of the second half, encoded with the updated encoder."""
    from crlkit.models.vae import permute_dims

    x = batch["x"]
    half = x.shape[1] // 2
    x1, x2 = (x[:, :half], x[:, half:]) if half > 0 else (x, x)

    def vae_part(params, buffers, hyper, x1, noise):
        codes = []

        def loss(net, x1):
            cls = type(net)
            net.sample_latent = lambda m, lv: codes.append(cls.sample_latent(net, m, lv)) or codes[-1]
            try:
                return net.loss({"x": x1}, step)
            finally:
                del net.sample_latent

        with group.member_view(hyper, tape, noise):
            total, terms = group.functional(params, buffers, loss, x1)
        return total, terms, codes[0]

    def disc_part(params, buffers, hyper, x2, z_real, noise):
        def loss(net, x2, z_real):
            with torch.no_grad():
                mean2, logvar2 = net.encode_dist(x2)
                z_fake = permute_dims(net.sample_latent(mean2, logvar2), lambda *s: net.rand(*s, device=x2.device))
            return net.discriminator_loss(z_real, z_fake)

        with group.member_view(hyper, tape, noise):
            return group.functional(params, buffers, loss, x2, z_real)

    with group.precision():
        total, terms, z = vmap(vae_part)(group.trainable("main"), group.buffers, group.hyper, x1, tape.rest())
    group.update("main", total, dry)
    with group.precision():
        d_loss, d_acc = vmap(disc_part)(group.trainable("discriminator"), group.buffers, group.hyper, x2,
                                        z.detach(), tape.rest())
    group.update("discriminator", d_loss, dry)
    out = {"loss": total.detach(), **{k: v.detach() for k, v in terms.items()}}
    out.update({"discriminator_loss": d_loss.detach(), "discriminator_accuracy": d_acc.detach()})
    return out


def _factor_vae_owner():
    from crlkit.models.vae import FactorVAE

    return FactorVAE.training_step


#: grouped step functions by kind: "loss" for methods with the default training_step, and
#: one per method whose own training_step they mirror (the equivalence tests pin each).
GROUPED_STEPS: dict[str, Callable] = {"loss": _loss_step, "factor_vae": _factor_vae_step}
_STEP_OWNERS: dict[str, Callable] = {"factor_vae": _factor_vae_owner}  # kind -> the training_step it mirrors


# --------------------------------------------------------------------------------------------
# group size on CUDA
# --------------------------------------------------------------------------------------------
def _fit_group_size(model, ds, settings, seeds, dev, precision) -> int:
    """All members on the CPU; on CUDA as many as fit in 80% of the free memory, from the
    peak memory of a probe group of two (one dry step, plus Adam's two moments)."""
    k = len(settings)
    if dev.type != "cuda" or k <= 2:
        return k
    per_model = _peak_memory_per_model(settings[:2], seeds[:2], ds, dev, precision)
    free, _ = torch.cuda.mem_get_info(dev)
    fit = max(1, int(0.8 * free // max(per_model, 1)))
    if fit < k:
        log.warning("%s: %d members; %d fit in 80%% of the free GPU memory (%.0f MB per model): "
                    "training groups of %d", model, k, fit, per_model / 2**20, fit)
    return min(k, fit)


def _peak_memory_per_model(settings, seeds, ds, dev, precision) -> float:
    torch.cuda.synchronize(dev)
    base = torch.cuda.memory_allocated(dev)
    torch.cuda.reset_peak_memory_stats(dev)
    g = _Group(settings, seeds, ds, dev, precision=precision)
    reason = g.why_not()
    if reason is not None:
        raise _NotGroupable(reason)
    params = sum(p.numel() * p.element_size() for p in g.params.values())
    peak = torch.cuda.max_memory_allocated(dev) - base + 2 * params  # + Adam's moments
    del g
    torch.cuda.empty_cache()
    return peak / len(seeds)


# --------------------------------------------------------------------------------------------
# training a group, each member to its own run directory (the trainer's files and writers)
# --------------------------------------------------------------------------------------------
def _member_trainers(model, group: _Group, members, dirs, ds_name, ds_opts, *, steps, resume,
                     overwrite) -> list[Trainer]:
    """One :class:`Trainer` per member, over the member's own net, optimizers and sampler: the
    group's loop drives its callbacks (NaN guard, CSV log, checkpoint, config.json), so a
    member's run directory is written by the same code as a single run's."""
    from crlkit import __version__

    tc = group.train_cfg
    trainers = []
    for k, out in enumerate(dirs):
        config = {
            "model": model, "dataset": ds_name, "data_options": jsonable(ds_opts), "steps": steps,
            "seed": int(group.seeds[k]), "observation_shape": list(group.ds.observation_shape),
            "batch_kind": group.cls.batch_kind, "model_config": jsonable(group.cfgs[k]),
            "train_config": jsonable(tc), "sampler_options": jsonable(group.sampler_opts),
            "overrides": jsonable(dict(members[k][1] or {})), "device": str(group.dev),
            "crlkit_version": __version__, "torch_version": torch.__version__,
        }
        if resume:  # the same fields as a single run's --resume compares
            old = read_run_config(out)
            for key in ("model", "dataset", "data_options", "seed", "model_config", "train_config",
                        "sampler_options"):
                if old.get(key) != json.loads(json.dumps(config[key])):
                    raise CrlkitError(f"--resume: {key} differs from the run in {out} "
                                      f"(was {old.get(key)!r}, now {config[key]!r})")
        extra: list[Callback] = [_WriteConfig(Path(out) / "config.json", config)]
        if tc.tensorboard:
            extra.append(TensorBoard(Path(out) / "tensorboard"))
        trainers.append(Trainer(group.nets[k], group.optimizers[k], group.samplers[k], steps=steps, out_dir=out,
                                callbacks=extra, log_every=tc.log_every, checkpoint_every=tc.checkpoint_every,
                                name=model, device=group.dev, train_config=tc, dataset=group.ds, progress=False))
    return trainers


def _checkpoint_due(trainer: Trainer) -> bool:
    """Whether the trainer's Checkpoint callback writes at this flush (the member's net and
    optimizers must then hold the stacked state)."""
    for cb in trainer.callbacks:
        if isinstance(cb, Checkpoint):
            return trainer.step // cb.every > cb.saved // cb.every or trainer.step >= trainer.total_steps
    return False


def _train_group(model, group: _Group, members, dirs, ds_name, ds_opts, *, steps, resume, overwrite, progress):
    dev, K, tc = group.dev, group.K, group.train_cfg
    for out in dirs:  # refuse before anything is written
        check_run_dir(out, resume=resume, overwrite=overwrite)
    trainers = _member_trainers(model, group, members, dirs, ds_name, ds_opts, steps=steps, resume=resume,
                                overwrite=overwrite)
    states = [t._start_run(resume, overwrite) for t in trainers]
    diverged: dict[int, str] = {}
    with process_settings(dev, cudnn_benchmark=tc.cudnn_benchmark, tune_malloc=tc.tune_malloc):
        for t, state in zip(trainers, states):
            if state is not None:
                t.load_state_dict(state)
            t.start_step = t.step
        starts = sorted({t.step for t in trainers})
        if len(starts) > 1:
            raise CrlkitError(f"--resume: the members' checkpoints are at different steps {starts}; "
                              "resume them with mode='sequential'")
        start = starts[0]
        if start > 0:
            group._stack()  # the members' loaded states, stacked again
        show = sys.stderr.isatty() if progress is None else bool(progress)
        bar = None
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        try:
            for t in trainers:
                t.call("on_fit_start")
            if show:
                from tqdm.auto import tqdm

                bar = tqdm(total=steps, initial=start, desc=f"{K} x {model} on {ds_name}", unit="step",
                           dynamic_ncols=True, file=sys.stderr)
            pending: list[dict[str, torch.Tensor]] = []
            images = 0
            t0 = time.perf_counter()
            for step in range(start, steps):
                batch = group.next_batch()
                images += sum(int(v.shape[0] * v.shape[1]) for key, v in batch.items() if key in ("x", "x2"))
                pending.append(group.step(batch, step))
                done = step + 1
                if done % tc.log_every == 0 or done == steps:
                    window = {term: torch.stack([p[term] for p in pending]) for term in pending[0]}  # (n, K)
                    window = dict(zip(window, torch.stack(list(window.values())).float().cpu()))  # one sync
                    n = len(pending)
                    pending = []
                    live = [k for k in range(K) if k not in diverged]
                    for k in live:
                        trainers[k].step = done
                        trainers[k]._pending = [{term: v[i, k] for term, v in window.items()} for i in range(n)]
                    due = [k for k in live if _checkpoint_due(trainers[k])]
                    if due:
                        group.sync_members(due)
                    for k in live:
                        try:
                            trainers[k].call("on_log", trainers[k]._flush())
                        except TrainingDiverged as e:
                            diverged[k] = f"member seed {group.seeds[k]} ({dirs[k]}): {e}"
                            log.warning("%s", diverged[k])
                    if bar is not None:
                        bar.update(done - bar.n)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            seconds = time.perf_counter() - t0
        except BaseException:
            for t in trainers:
                with contextlib.suppress(Exception):
                    t.call("on_fit_end", None)
            raise
        finally:
            if bar is not None:
                bar.close()
    peak = (torch.cuda.max_memory_allocated(dev) / K / 2**20) if dev.type == "cuda" else None
    total_rate = images / seconds if seconds > 0 and images else 0.0
    summaries = []
    for k, t in enumerate(trainers):
        if k in diverged:
            continue
        t.seconds = seconds
        result = t.summary()
        summary = {
            "model": model, "dataset": ds_name, "steps": steps, "seed": int(group.seeds[k]),
            "final_loss": result["final_loss"], "terms": result["terms"], "images_per_second": total_rate / K,
            "seconds": seconds, "resumed_from": start, "device": str(dev), "batch_size": tc.batch_size,
            "machine": f"{platform.machine()} {os.cpu_count()} cpus", "torch_threads": torch.get_num_threads(),
            "group": {"mode": "grouped", "size": K, "reason": None, "images_per_second_total": total_rate,
                      "peak_memory_per_model_mb": peak, "precision": "bf16" if group.bf16 else "fp32"},
        }
        t.call("on_fit_end", summary)
        atomic_write_json(Path(dirs[k]) / "summary.json", summary)
        summaries.append(summary)
    return summaries, list(diverged.values())


__all__ = ["train_many", "parse_seeds", "GROUPED_STEPS", "MODES", "PRECISIONS"]
