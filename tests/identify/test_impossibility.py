import json

import numpy as np
import pytest
import torch
from scipy import stats

from crlkit.cli import main
from crlkit.data import make_dataset
from crlkit.errors import CrlkitError
from crlkit.identify.impossibility import (ComposedMixing, FactorisedMarginals, MarginalRotation,
                                           impossibility_experiment, impossibility_for_model)
from crlkit.scm import LatentSCM


@pytest.mark.parametrize("noise", ["gaussian", "laplace", "uniform"])
def test_f_preserves_the_marginals_and_density_and_entangles(noise):
    scm = LatentSCM.random(3, "empty", noise=noise, noise_scale=1.7, seed=0)
    f = MarginalRotation.for_scm(scm, seed=1)
    z = scm.sample(4000, seed=2)
    z2 = f(z)
    np.testing.assert_allclose(f.inverse(z2), z, atol=1e-9)
    fresh = scm.sample(4000, seed=3)
    for j in range(3):  # same marginals as an independent sample (Bonferroni over 3 tests)
        assert stats.ks_2samp(z2[:, j], fresh[:, j]).pvalue > 0.01 / 3
    # exact change of variables: p(f(z)) |det J_f(z)| = p(z)
    np.testing.assert_allclose(scm.log_prob(z2) + f.log_abs_det_jacobian(z), scm.log_prob(z), atol=1e-9)
    # the analytic Jacobian matches finite differences and its log-det; every entry is non-zero
    zs, h = z[:20], 1e-6
    jac_fd = np.stack([(f(zs + h * np.eye(3)[j]) - f(zs - h * np.eye(3)[j])) / (2 * h) for j in range(3)], axis=2)
    jac = f.jacobian(zs)
    np.testing.assert_allclose(jac, jac_fd, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.linalg.slogdet(jac)[1], f.log_abs_det_jacobian(zs), atol=1e-8)
    assert np.abs(jac).min() > 0
    # entangled: each output correlates with several inputs
    corr = np.abs(np.corrcoef(z.T, z2.T)[:3, 3:])
    assert (corr > 0.1).sum() >= 5


def test_gaussian_case_is_the_rotation_itself():
    scm = LatentSCM.random(4, "empty", seed=0)
    f = MarginalRotation.for_scm(scm, seed=0)
    z = scm.sample(100, seed=1)
    np.testing.assert_allclose(f(z), z @ f.rotation.T, atol=1e-12)


def test_mixture_marginals_round_trip_far_into_the_tails():
    m = FactorisedMarginals("laplace", scale=[[0.5, 1.0], [2.0, 0.3], [1.0, 1.0]],
                            shift=[[-3.0, 0.0], [1.0, 2.0], [4.0, -1.0]])
    z = np.array([[-30.0, -12.0], [0.1, 0.2], [25.0, 9.0], [4.0, -1.0]])
    a = m.normal_score(z)
    assert np.all(np.isfinite(a))
    np.testing.assert_allclose(m.from_normal_score(a), z, rtol=1e-9, atol=1e-9)


def test_segmented_models_are_rejected_with_the_reason():
    scm = LatentSCM.random(3, "empty", segments=4, seed=0)
    with pytest.raises(CrlkitError, match="segments"):
        MarginalRotation.for_scm(scm)
    with pytest.raises(CrlkitError, match="independent"):
        MarginalRotation.for_scm(LatentSCM.random(3, "chain", seed=0))


@pytest.mark.parametrize("latents,noise", [(2, "uniform"), (4, "laplace")])
def test_same_likelihood_and_elbo_lower_mcc(latents, noise):
    ds = make_dataset("synthetic", latents=latents, noise=noise, seed=3)
    res = impossibility_experiment(ds, n=2000, seed=0, n_mc=4)
    assert res["loglik_max_abs_diff"] < 1e-8
    assert abs(res["elbo_original"] - res["elbo_rotated"]) < 4 * res["elbo_se"]
    assert res["mcc_original"] > 0.999
    assert res["mcc_rotated"] < res["mcc_original"] - 0.15
    assert res["mig_rotated"] < res["mig_original"] - 0.1
    # the composed generator renders the same x from the entangled latents
    comp = ComposedMixing(ds.mixing, MarginalRotation.for_scm(ds.scm, np.asarray(res["rotation"])))
    arr = res["_arrays"]
    np.testing.assert_allclose(comp(arr["z_rotated"]), arr["x"], rtol=1e-8, atol=1e-8)


def test_trained_model_path_keeps_the_elbo():
    from crlkit.models.base import get_model_class

    torch.manual_seed(0)
    cls = get_model_class("vae")
    ds = make_dataset("synthetic", latents=3, seed=0)
    model = cls(cls.Config(num_latents=3, mlp_hidden=32, mlp_depth=2), ds.observation_shape)
    res = impossibility_for_model(model, ds, n=400, seed=0, n_mc=4)
    assert abs(res["kl_original"] - res["kl_rotated"]) < 1e-4 * max(1.0, abs(res["kl_original"]))
    assert abs(res["elbo_original"] - res["elbo_rotated"]) < 4 * res["elbo_se"] + 1e-4


def test_cli_writes_results_and_figure(tmp_path, capsys):
    out = tmp_path / "imp"
    assert main(["impossibility", "--seed", "0", "--out", str(out), "--samples", "600"]) == 0
    res = json.loads((out / "results.json").read_text())
    for key in ("elbo_original", "elbo_rotated", "mcc_original", "mcc_rotated"):
        assert isinstance(res[key], float)
    assert res["mcc_rotated"] < res["mcc_original"]
    assert (out / "impossibility.png").stat().st_size > 10_000
    assert main(["impossibility", "--latents", "1", "--out", str(out)]) == 2
    assert "latents" in capsys.readouterr().err
