import subprocess
import sys

from crlkit.cli import main
from crlkit.errors import CrlkitError
from crlkit.registry import Registry


def test_registry_error_names_field_and_choices():
    reg = Registry("model")
    reg.register("beta_vae", object())
    reg.register("factor_vae", object())
    try:
        reg.get("beta_vea")
    except CrlkitError as e:
        msg = str(e)
    else:
        raise AssertionError("no error")
    assert "model" in msg and "beta_vae" in msg and "factor_vae" in msg and "did you mean 'beta_vae'" in msg


def test_cli_without_command_exits_nonzero(capsys):
    assert main([]) == 2


def test_cli_unknown_command_has_no_traceback():
    r = subprocess.run([sys.executable, "-m", "crlkit", "no-such-command"], capture_output=True, text=True)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and "invalid choice" in r.stderr


def test_train_and_traverse_speak_the_vocabulary(tmp_path, capsys):
    import json

    import torch
    from PIL import Image

    threads = torch.get_num_threads()
    run = tmp_path / "run"
    assert main(["train", "--model", "beta_vae", "--dataset", "dsprites", "--steps", "2", "--out", str(run),
                 "--set", "batch_size=4", "--set", "beta=8", "--threads", "2", "--no-progress"]) == 0
    assert "beta_vae on dsprites: 2 steps" in capsys.readouterr().out
    assert json.loads((run / "config.json").read_text())["model_config"]["beta"] == 8.0
    assert torch.get_num_threads() == threads  # --threads is restored when the command ends
    png = tmp_path / "t.png"
    assert main(["traverse", str(run), "--out", str(png), "--values", "3", "--samples", "2", "--limit", "1.5"]) == 0
    w, h = Image.open(png).size
    assert w > 100 and h > 100
    assert main(["traverse", str(run), "--out", str(tmp_path / "t.jpg")]) == 2
    assert "--out must be a .png file" in capsys.readouterr().err


def test_unknown_dataset_fails_before_the_run_directory_exists(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--model", "beta_vae", "--dataset", "dsprite", "--steps", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'dsprites'" in err and err.count("\n") == 1
    assert not out.exists()


def test_train_into_an_existing_run_needs_resume_or_overwrite(tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", "--model", "vae", "--dataset", "synthetic", "--steps", "2", "--out", str(run),
            "--set", "batch_size=8", "--no-progress"]
    assert main(argv) == 0
    before = (run / "checkpoint.pt").read_bytes()
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert str(run) in err and err.count("\n") == 1
    assert (run / "checkpoint.pt").read_bytes() == before          # nothing touched
    assert main(argv + ["--resume", "--overwrite"]) == 2           # one or the other
    assert "not allowed with argument" in capsys.readouterr().err
    assert main(argv[:6] + ["4"] + argv[7:] + ["--resume"]) == 0
    assert main(argv + ["--overwrite"]) == 0
