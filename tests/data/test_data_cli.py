"""`crlkit data show` / `data list` and the demo section."""

import json
import subprocess
import sys

import numpy as np
from PIL import Image

from crlkit.cli import main
from crlkit.commands.data import demo_section, traversal_factors
from crlkit.data import make_dataset


def test_data_show_writes_pictures_and_info(tmp_path):
    out = tmp_path / "ds"
    assert main(["data", "show", "dsprites", "--out", str(out), "--samples", "9", "--seed", "3"]) == 0
    info = json.loads((out / "info.json").read_text())
    assert info == {"name": "dsprites", "factor_names": ["shape", "scale", "orientation", "posX", "posY"],
                    "factor_sizes": [3, 6, 40, 32, 32], "observation_shape": [1, 64, 64]}
    for name in ("samples.png", "traversals.png"):
        img = np.asarray(Image.open(out / name))
        assert img.shape[0] > 64 and img.shape[1] > 64 and img.std() > 10
    assert not (out / "graph.png").exists()


def test_data_show_graph_and_vector_dataset(tmp_path):
    assert main(["data", "show", "pendulum", "--out", str(tmp_path / "p"), "--samples", "4"]) == 0
    assert (tmp_path / "p" / "graph.png").exists()
    assert json.loads((tmp_path / "p" / "info.json").read_text())["factor_sizes"] == [84, 88, 40, 72]
    assert main(["data", "show", "synthetic", "--out", str(tmp_path / "s"), "--samples", "50",
                 "--data-set", "latents=3"]) == 0
    info = json.loads((tmp_path / "s" / "info.json").read_text())
    assert info["factor_sizes"] is None and info["observation_shape"] == [3]
    assert (tmp_path / "s" / "samples.png").exists()


def test_traversals_vary_one_factor_and_follow_interventions():
    ds = make_dataset("dsprites")
    base = np.array([1, 2, 3, 4, 5])
    for j, (name, f) in enumerate(traversal_factors(ds, base, 10)):
        assert name == ds.factor_names[j]
        others = np.delete(f, j, axis=1)
        assert np.all(others == np.delete(base, j))
        assert f[0, j] == 0 and f[-1, j] == ds.factor_sizes[j] - 1
    pend = make_dataset("pendulum")
    rows = dict(traversal_factors(pend, pend.sample_factors(1, 0)[0], 5))
    f = rows["light_angle"]
    np.testing.assert_array_equal(f[:, 2:], pend.derived_factors(f[:, :2]))  # descendants follow


def test_cli_errors_are_one_line(tmp_path, capsys):
    cases = [(["data", "show", "dsprite", "--out", str(tmp_path)], "did you mean 'dsprites'"),
             (["data", "show", "dsprites", "--out", str(tmp_path), "--data-set", "colour=1"], "valid choices: path"),
             (["data", "show", "dsprites", "--out", str(tmp_path), "--data-set", "path=/no/such.npz"],
              "/no/such.npz")]
    for argv, expected in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert expected in err and "Traceback" not in err, err
    r = subprocess.run([sys.executable, "-m", "crlkit", *cases[0][0]], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "unknown dataset" in r.stderr


def test_data_list(capsys):
    assert main(["data", "list"]) == 0
    text = capsys.readouterr().out
    for name in ("dsprites", "color_dsprites", "noisy_dsprites", "shapes3d", "pendulum"):
        assert name in text
    assert "posY[32]" in text


def test_demo_section_shows_every_dataset(tmp_path):
    from crlkit.commands.demo import DemoContext
    from crlkit.data import list_datasets

    ctx = DemoContext(out_dir=tmp_path, seed=0, shared={})
    frag = demo_section(ctx)
    for name in list_datasets():
        if name == "arrays":  # a user's file: nothing to show without path=
            continue
        assert f"data/{name}/samples.png" in frag
        assert (tmp_path / "data" / name / "samples.png").exists()
    assert "data/pendulum/graph.png" in frag
