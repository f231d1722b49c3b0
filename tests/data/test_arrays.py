"""``arrays``: a user's .npz through every command, declaring only what the file holds."""

from __future__ import annotations

import numpy as np
import pytest

from crlkit.cli import main
from crlkit.contracts import check, dataset_contract
from crlkit.data import make_dataset
from crlkit.errors import CrlkitError


@pytest.fixture
def world(tmp_path):
    rng = np.random.default_rng(0)
    z = rng.standard_normal((300, 3))
    x = np.tanh(z @ rng.standard_normal((3, 5)))
    path = tmp_path / "world.npz"
    np.savez(path, factors=z, observations=x, segments=rng.integers(0, 6, 300),
             pairs=np.stack([np.arange(0, 300, 2), np.arange(1, 300, 2)], 1), graph=np.triu(np.ones((3, 3)), 1))
    return path, z, x


def test_arrays_samples_rows_and_declares_what_the_file_holds(world):
    path, z, x = world
    ds = make_dataset("arrays", path=str(path))
    assert ds.observation_shape == (5,) and ds.num_factors == 3
    f, obs = ds.sample(50, np.random.default_rng(1))
    rows = [int(np.flatnonzero((z == r).all(1))[0]) for r in f]  # every sample is a stored row
    np.testing.assert_allclose(obs, x[rows].astype(np.float32))
    np.testing.assert_allclose(ds.observations_from_factors(f), obs)
    c = dataset_contract(ds)
    assert c.segments == 6 and not c.independent and c.mixing == "unknown" and c.observation_noise is None
    assert c.structures == ("single",) and "150 stored pairs" in c.note
    # i.i.d. methods are admitted with injectivity unverified; samplers that draw fresh latents are refused
    vae = check("vae", ds)
    assert vae.ok
    ivae = check("ivae", ds)
    assert not ivae.admitted and "cannot draw auxiliary variable" in ivae.line()


def test_arrays_errors_name_the_field(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, factors=np.zeros((4, 2)))
    with pytest.raises(CrlkitError, match="'observations'"):
        make_dataset("arrays", path=str(bad))
    with pytest.raises(CrlkitError, match="no file"):
        make_dataset("arrays", path=str(tmp_path / "missing.npz"))
    np.savez(bad, factors=np.zeros((4, 2)), observations=np.zeros((4, 3)), pairs=np.array([[0, 9]]))
    with pytest.raises(CrlkitError, match="'pairs'"):
        make_dataset("arrays", path=str(bad))


def test_train_command_accepts_arrays_and_refuses_with_one_line(world, tmp_path, capsys):
    path, _, _ = world
    rc = main(["train", "--model", "vae", "--dataset", "arrays", "--data-set", f"path={path}", "--steps", "2",
               "--out", str(tmp_path / "run"), "--set", "batch_size=8", "--set", "num_latents=3"])
    out = capsys.readouterr().out
    assert rc == 0 and "guarantee: none" in out
    rc = main(["train", "--model", "ivae", "--dataset", "arrays", "--data-set", f"path={path}", "--steps", "2",
               "--out", str(tmp_path / "run2")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "refused: needs" in err
