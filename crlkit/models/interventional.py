r"""Causal representation learning from counterfactual pairs around a single-node intervention
(ILCM setting, Brehmer et al. 2022; CauCA's known targets, Liang et al. 2023).

Stage 1 (training) learns the noise encoding with a contrastive loss whose similarity lets one
coordinate change per pair; stage 2 (:meth:`Interventional.infer_graph`) reads the causal
variables and the latent graph off the codes of pairs with :mod:`crlkit.graph`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from crlkit.errors import CrlkitError
from crlkit.graph import GRAPH_SEARCHES, INDEP_TESTS, causal_variables, learn_graph
from crlkit.models._common import (Whitening, batch_entry, check_at_least, check_choice, check_positive,
                                   encode_in_batches, method_callbacks, vector_dim)
from crlkit.models.architectures import mlp
from crlkit.models.base import Method, register_model
from crlkit.models.contrastive import info_nce, two_way_cross_entropy
from crlkit.train.schedules import SCHEDULES, cosine_with_restart

__all__ = ["one_change_distance", "known_change_info_nce", "InterventionalConfig", "Interventional"]


# --------------------------------------------------------------------------------------------
# losses for pairs that differ in one coordinate
# --------------------------------------------------------------------------------------------
def one_change_distance(a: torch.Tensor, b: torch.Tensor, tau: float) -> torch.Tensor:
    """``D[i, j] = ||d||_1 - tau * log sum_k exp(|d_k| / tau)`` with ``d = a_i - b_j``: the L1
    distance with (softly) the largest coordinate left out.

    ``exp(-D / tau)`` is a mixture over k of Laplace kernels on all coordinates but k, the
    log-density of a pair that shares every coordinate except one unknown one.
    """
    diff = (a.unsqueeze(1) - b.unsqueeze(0)).abs()  # (B, B, d)
    return diff.sum(-1) - tau * torch.logsumexp(diff / tau, dim=-1)


def known_change_info_nce(h1: torch.Tensor, h2: torch.Tensor, target: torch.Tensor, *, tau: float = 1.0
                          ) -> torch.Tensor:
    """Symmetric InfoNCE for pairs that differ in one *known* coordinate: the similarity of
    anchor ``h1_i`` and candidate ``h2_j`` is ``-sum_{l != t_i} |h1_il - h2_jl| / tau`` (the L1
    distance without the anchor's target ``t_i``), and likewise with ``t_j`` for anchors from
    ``h2``: a Laplace kernel on the coordinates the intervention left alone. Fixing which
    coordinate may change ties code coordinate k to node k (CauCA's known-target setting,
    Liang et al. 2023), where :func:`one_change_distance` leaves the permutation open.
    """
    keep = 1.0 - nn.functional.one_hot(target.long(), h1.shape[1]).to(h1.dtype)  # (B, d)
    diff = (h1.unsqueeze(1) - h2.unsqueeze(0)).abs()  # (B, B, d): [i, j] = |h1_i - h2_j|
    logits_1 = -(diff * keep.unsqueeze(1)).sum(-1) / tau  # anchors h1_i, target t_i left out
    logits_2 = -(diff * keep.unsqueeze(0)).sum(-1) / tau  # anchors h2_j, target t_j left out
    return two_way_cross_entropy(logits_1, logits_2.T)


@dataclass(frozen=True)
class InterventionalConfig:
    num_latents: int = 5          # number of causal variables (nodes of the latent graph)
    hidden: int = 256             # hidden units of the encoder MLP
    depth: int = 4                # hidden layers of the encoder MLP
    slope: float = 0.2            # leaky-ReLU slope of the encoder
    tau: float = 1.0              # temperature of the InfoNCE logits and of the soft "largest change"
    whiten: bool = True           # whiten x (statistics fitted on data) before encoding
    alpha: float = 0.01           # significance level of the conditional-independence tests
    indep_test: str = "fisherz"   # causal-learn CI test on the recovered causal variables
    min_effect: float = 0.1       # smallest standardised direct effect for an edge to be kept (0.2-0.4%
                                  #   of the true edges of the benchmark's 5-8-node graphs are weaker)
    min_partial_corr: float = 0.05  # smallest |partial correlation| of z_i and z_j given j's other
                                  #   predecessors for an edge i -> j: an effect-size floor on the CI test,
                                  #   whose p-value alone turns stage 1's small biases into edges as the
                                  #   number of pairs grows
    graph_search: str = "order"   # "order": test each variable against each predecessor in the inferred
                                  #   causal order given the other predecessors (needs minimality only);
                                  #   "pc": PC's skeleton (needs faithfulness), oriented by the order
    unmix: bool = True            # before stage 2, undo a linear mix of the code estimated from the
                                  #   pairs' change directions (see unmix_from_changes)
    parent_fit_bound: float = 2.0  # stage 2 fits node k's parents' contribution again on the pairs whose
                                  #   first fit lies within this many (standardised code) units of its
                                  #   median, so the intervened code stays in the range stage 1 was trained
                                  #   on (see fit_parents_contribution); 0: fit on all pairs
    known_targets: bool = False   # the pairs' intervention targets are known (CauCA setting; batches
                                  #   carry "target"): stage 1 leaves the target's coordinate out of the
                                  #   distance, so code k is node k, and stage 2 uses the given targets
    refine_from: int = 0          # unknown targets: from this training step on, each pair's target is its own
                                  #   largest batch-standardised code change (detached) and the known-target
                                  #   loss is used (a hard-EM refinement that undoes mixes of two noises stage 1
                                  #   can stop in); 0: never. The runner starts it at 3/4 of the steps
    refine_lr: float = 1 / 3      # learning rate of the refinement as a fraction of the initial one: with a
                                  #   cosine schedule, stage 1's cosine reaches 0 at refine_from and the
                                  #   refinement's starts again from this fraction
    lr_schedule: str = "cosine"   # "cosine" (decay to 0 over the run; two cosines with a refinement) or "constant"
    lr_decay_steps: int = 0       # length of the cosine in steps (0: the run's --steps); fixed, an extended
                                  #   (--resume with more --steps) run keeps its schedule
    recon_weight: float = 0.0     # weight of a reconstruction term: a decoder MLP maps the code back to the
                                  #   whitened x (squared error); keeps the code injective (0: off)


@register_model("interventional")
class Interventional(Method):
    r"""Causal representation learning from counterfactual pairs around an unknown
    single-node intervention (ILCM setting, Brehmer et al. 2022), in two stages.

    **Data.** Pairs ``x = g(z)``, ``x~ = g(z~)`` share the exogenous noise of an additive-noise
    SCM ``z_j = f_j(z_pa(j)) + e_j``; in ``x~`` one unknown node k is intervened on. Written in
    the *observational* noise encoding ``e(z)_j = z_j - f_j(z_pa(j))`` (ILCM's "noise
    encoding"), the pair differs in exactly one coordinate: ``e(z~)_j = e_j`` for ``j != k``
    and ``e(z~)_k = z~_k - f_k(z_pa(k))``.

    **Stage 1 (this module's training).** An encoder ``h: x -> R^n`` trained by InfoNCE with
    the similarity of a pair that shares all coordinates but one (:func:`one_change_distance`:
    L1 over all coordinates except, softly, the one that changed most) recovers the independent
    noise encoding ``e`` up to permutation and per-coordinate maps.

    **Stage 2 (:meth:`infer_graph`, after training).** First, when ``unmix`` is set, a linear
    mix left in the code is undone (:func:`unmix_from_changes`): a pair changes one noise, so its
    code change points along one column of the mix. For pairs whose code changed along coordinate
    k (the inferred target), a regression of ``h(x~)_k`` on ``h(x)`` estimates
    ``E[e(z~)_k | e] = E[z~_k] - f_k(z_pa(k))``; hence the causal variable
    ``z_k = e_k + f_k(z_pa(k)) ≈ h(x)_k - E[h(x~)_k | h(x)] + const`` (fitted again on the pairs
    whose fit stays within ``parent_fit_bound``, where stage 1 was trained: see
    :func:`fit_parents_contribution`). The causal order comes
    from which noises enter which variables (ancestors' noise drives descendants). With the order
    known the DAG is identified under causal minimality alone: ``i -> j`` for a predecessor ``i``
    of ``j`` iff ``z_i`` and ``z_j`` are dependent given the other predecessors of ``j``
    (``graph_search="order"``: causal-learn's CI test); ``graph_search="pc"`` uses PC's skeleton
    instead, which also needs faithfulness. Either way an edge is kept only when that partial
    correlation is at least ``min_partial_corr`` in size and the standardised direct effect at
    least ``min_effect``: stage 1 is never exact, and a test's p-value alone finds its small
    biases significant once there are enough pairs (on the benchmark, 50,000 pairs without the
    floor gave more errors than 5,000). Exact for linear SCMs with affine stage-1 maps; an
    approximation for nonlinear ones.

    **Refinement** (``refine_from`` > 0, unknown targets only). Stage 1 can stop with two noises
    mixed, linearly or not (the soft "largest change" lets both mixed coordinates change), while
    its loss is near 0. From step ``refine_from`` on, each pair's target is taken to be its own
    largest batch-standardised code change (no gradient) and the pair is scored by
    :func:`known_change_info_nce` with that target: the other coordinates must not change at all,
    so a coordinate that leans towards one noise is pulled onto it (a hard-EM step). When
    the schedule is cosine, stage 1's cosine ends at ``refine_from`` and the refinement's
    starts again from ``refine_lr`` times the rate (:func:`crlkit.train.schedules.cosine_with_restart`). On the
    5-node benchmark graphs where stage 1 had stopped mixed this took SHD 4 / 2 / 3 to 1 / 0 / 0;
    with it (and stage 2 on 50,000 pairs), one run of the runner reaches SHD <= 1 on all 39 5-node
    seeds measured (bench/RESULTS_identify.md). A stage 1 can also *fold* (two noises in one
    coordinate, one noise over two) at near-zero loss, which the refinement does not undo; the
    runner flags it by ``target_balance`` (see :meth:`causal_variables`) and trains restarts.

    **Reconstruction term** (``recon_weight`` > 0; the runner uses 1). A decoder MLP maps the code
    back to the whitened x and ``recon_weight`` times its squared error is added to the loss. Any
    injective code can be decoded, so the term leaves the noise encoding optimal; a folded code has
    lost a noise and cannot. It does not rule folds out, but made them rarer on 6-node graphs
    (bench/RESULTS_identify.md, eighth session). ILCM itself is a VAE, whose reconstruction keeps
    its encoder injective in the same way.

    **Known targets** (``known_targets=True``, the CauCA setting): stage 1 is trained with
    :func:`known_change_info_nce`, which names the coordinate each pair may change, so code k
    is tied to node k; stage 2 takes the given targets instead of inferring them from the codes.

    Batches: ``{"x": (B, D), "x2": (B, D)}``, plus ``"target": (B,)`` with ``known_targets``.
    """

    Config = InterventionalConfig
    batch_kind = "intervention_pair"
    pair_keys = ("x2", "x_int", "x_intervened", "x_tilde", "x_pos", "x_pair")

    def __init__(self, config: InterventionalConfig, observation_shape: tuple[int, ...]):
        super().__init__(config, observation_shape)
        d = vector_dim(observation_shape, "interventional")
        check_positive("tau", config.tau)
        if not 0 < config.alpha < 1:
            raise CrlkitError(f"alpha must be in (0, 1); got {config.alpha}")
        check_choice("indep_test", config.indep_test, INDEP_TESTS)
        check_choice("graph_search", config.graph_search, GRAPH_SEARCHES)
        check_choice("lr_schedule", config.lr_schedule, SCHEDULES)
        check_at_least("num_latents", config.num_latents, 2, " to learn a graph")
        check_at_least("refine_from", config.refine_from, 0, " (0: no refinement)")
        check_positive("refine_lr", config.refine_lr)
        check_at_least("min_effect", config.min_effect, 0)
        if not 0 <= config.min_partial_corr < 1:
            raise CrlkitError(f"min_partial_corr must be in [0, 1); got {config.min_partial_corr}")
        check_at_least("parent_fit_bound", config.parent_fit_bound, 0, " (0: fit on all pairs)")
        check_at_least("recon_weight", config.recon_weight, 0, " (0: no reconstruction term)")
        self.whitening = Whitening(d, enabled=config.whiten)
        self.encoder = mlp(d, config.num_latents, config.hidden, config.depth, slope=config.slope)
        self.decoder = (mlp(config.num_latents, d, config.hidden, config.depth, slope=config.slope)
                        if config.recon_weight > 0 else None)

    def callbacks(self, train_config: Any) -> list:
        """Whitening before step 1, and one cosine, or two when a refinement follows stage 1."""
        cfg = self.config
        refine = 0 if cfg.known_targets else int(cfg.refine_from)
        return method_callbacks(cfg.whiten, cfg.lr_schedule, cosine_with_restart(refine, cfg.refine_lr),
                                steps=cfg.lr_decay_steps)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.whitening(x))

    def loss(self, batch: dict[str, torch.Tensor], step: int):
        x = batch["x"]
        x2 = batch_entry(batch, self.pair_keys, "interventional")
        xw = self.whitening(torch.cat([x, x2]))  # whitened once: the encoder's input and the decoder's target
        h1, h2 = self.encoder(xw).chunk(2)  # self.encode, one pass over both halves of the pairs
        tau = self.config.tau
        if self.config.known_targets:
            if "target" not in batch:
                raise CrlkitError("interventional with known_targets=True needs batches with a 'target' entry "
                                  "(the intervened node of each pair, as the intervention_pair sampler gives); "
                                  f"got keys {sorted(batch)}")
            loss = known_change_info_nce(h1, h2, batch["target"], tau=tau)
        elif 0 < self.config.refine_from <= step:
            with torch.no_grad():  # each pair's own largest standardised change names its target
                target = ((h1 - h2).abs() / h1.std(0).clamp_min(1e-6)).argmax(1)
            loss = known_change_info_nce(h1, h2, target, tau=tau)
        else:
            loss = info_nce(h1, h2, tau=tau, distance=lambda a, b: one_change_distance(a, b, tau))
        terms = {"info_nce": loss.detach()}
        if self.decoder is not None:
            recon = (self.decoder(torch.cat([h1, h2])) - xw).pow(2).sum(-1).mean()
            loss = loss + self.config.recon_weight * recon
            terms["recon"] = recon.detach()
        with torch.no_grad():
            d = (h1 - h2).abs()
            # share of the change carried by the largest coordinate: 1 = a single-node change
            sparsity = (d.max(-1).values / d.sum(-1).clamp_min(1e-8)).mean()
        return loss, {**terms, "top_change_share": sparsity}

    def causal_variables(self, x: np.ndarray | torch.Tensor, x_int: np.ndarray | torch.Tensor,
                         targets: np.ndarray | torch.Tensor | None = None) -> dict[str, np.ndarray]:
        """Stage 2: the causal variables and the noise-to-variable weights from pairs ``(x, x_int)``
        (see :func:`crlkit.graph.causal_variables` for the returned entries).

        ``targets``: (N,) the intervened node of each pair when known (code coordinate k is
        node k for a model trained with ``known_targets``); inferred from the codes otherwise.
        """
        if targets is not None and not self.config.known_targets:
            raise CrlkitError("targets can be given only to a model trained with known_targets=True (only there "
                              "is code coordinate k node k); this model infers them from its codes")
        if targets is not None:
            targets = np.asarray(targets.cpu() if torch.is_tensor(targets) else targets)
        e, e2 = encode_in_batches(self, _array(x)), encode_in_batches(self, _array(x_int))
        return causal_variables(e, e2, targets=targets, unmix=self.config.unmix,
                                parent_fit_bound=self.config.parent_fit_bound)

    def infer_graph(self, x, x_int, targets=None) -> dict[str, Any]:
        """The latent graph over the stage-2 causal variables (see the class docstring).

        Returns ``{"graph": (n, n) int adjacency, graph[i, j] = 1 iff i -> j in the learned
        coordinates, "skeleton", "partial"}`` (:func:`crlkit.graph.learn_graph`) with the entries of
        :meth:`causal_variables`.
        """
        cv = self.causal_variables(x, x_int, targets)
        cfg = self.config
        g = learn_graph(cv["z"], cv["order"], cv["direct"], search=cfg.graph_search, alpha=cfg.alpha,
                        indep_test=cfg.indep_test, min_partial_corr=cfg.min_partial_corr,
                        min_effect=cfg.min_effect)
        return {**g, **cv}


def _array(x) -> np.ndarray:
    return np.asarray(x.detach().cpu() if torch.is_tensor(x) else x)
