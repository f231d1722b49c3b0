"""The mean-field ELBO gap of the iVAE benchmark's mixings (issue 6).

Near the deterministic limit, a VAE whose posterior is a *diagonal* Gaussian has, at the true
decoder g, an ELBO equal to the log-likelihood minus the "independent mechanism analysis"
contrast (Reizinger et al., NeurIPS 2022, "Embrace the gap")::

    c_IMA(z) = sum_i log ||J_i(z)|| - log |det J(z)|,   J = d g / d z,  J_i its columns,

which is zero only where J has orthogonal columns. This script measures, on the benchmark's
synthetic data (whitened x, as the model sees it), the mean of c_IMA and the data's exact
log-likelihood ``log p(z | u) - log |det J|`` per sample, for leaky-ReLU slopes 0.1 / 0.2 / 0.5 and
xtanh, 2 and 3 layers. A large gap means the mean-field ELBO is biased against the true
solution; ``IVAEConfig(posterior="full")`` removes it.

    .venv/bin/python bench/ivae_ima_gap.py [--seeds 0 1 2 3] [--samples 20000]

Results: bench/RESULTS_identify.md (session of 2026-11-28).
"""
import argparse

import numpy as np

from crlkit.data import make_dataset


def mixing_jacobian(mixing, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(x, J)`` of an :class:`~crlkit.mixing.InvertibleMLP` at ``z`` (N, n): J is (N, D, n),
    by the chain rule through the mixing's own activation and its log-derivative."""
    n = z.shape[1]
    jac = np.broadcast_to(np.eye(n), (len(z), n, n)).copy()
    h = np.asarray(z, dtype=np.float64)
    for i, w in enumerate(mixing.weights):
        h = h @ w.T
        jac = np.einsum("ij,njk->nik", w, jac)
        if i < len(mixing.weights) - 1:
            jac = np.exp(mixing._log_act_derivative(h))[:, :, None] * jac
            h = mixing._act(h)
    return h, jac


def gap_and_loglik(latents: int, segments: int, layers: int, activation: str, slope: float, seed: int,
                   samples: int) -> dict[str, float]:
    ds = make_dataset("synthetic", latents=latents, segments=segments, segment_scale=(0.5, 3.0), mixing="mlp",
                      mixing_layers=layers, slope=slope, mixing_activation=activation, seed=seed)
    rng = np.random.default_rng(seed + 1)
    s = ds.sample_latents(samples, rng)
    z, u = np.asarray(s.z, dtype=np.float64), np.asarray(s.u)
    x, jac = mixing_jacobian(ds.mixing, z)
    assert np.allclose(x, np.asarray(ds.observations_from_factors(z, rng)), atol=1e-5)
    evals, evecs = np.linalg.eigh(np.cov(x.T))
    whiten = evecs @ np.diag(evals ** -0.5) @ evecs.T
    jac = np.einsum("ij,njk->nik", whiten, jac)
    _, logdet = np.linalg.slogdet(jac)
    c_ima = np.log(np.linalg.norm(jac, axis=1)).sum(1) - logdet
    scale = np.asarray(ds.scm.segment_scale)[u]
    log_pz = (-0.5 * np.log(2 * np.pi) - np.log(scale) - 0.5 * (z / scale) ** 2).sum(1)
    return {"gap": float(c_ima.mean()), "gap_q90": float(np.quantile(c_ima, 0.9)),
            "loglik": float((log_pz - logdet).mean()), "meanfield_bound": float((log_pz - logdet - c_ima).mean())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    ap.add_argument("--samples", type=int, default=20000)
    args = ap.parse_args()
    print("| n | segments | layers | activation | slope | mean c_IMA per seed (nats) | log-likelihood per seed |")
    print("|---|---|---|---|---|---|---|")
    for n, m, layers in [(5, 40, 3), (4, 30, 2)]:
        for act, slope in [("lrelu", 0.1), ("lrelu", 0.2), ("lrelu", 0.5), ("xtanh", 0.1)]:
            rows = [gap_and_loglik(n, m, layers, act, slope, seed, args.samples) for seed in args.seeds]
            print(f"| {n} | {m} | {layers} | {act} | {slope} | " + " / ".join(f"{r['gap']:.2f}" for r in rows)
                  + " | " + " / ".join(f"{r['loglik']:.2f}" for r in rows) + " |", flush=True)


if __name__ == "__main__":
    main()
