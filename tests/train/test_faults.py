"""Fault tests: a ``crlkit train`` process killed with SIGKILL after its first checkpoint
resumes (``--resume``) to the same weights and log as an uninterrupted run; truncated and
foreign checkpoints, and writing into an existing run, end with exit 2 and one line.

Only the killed run is a subprocess (starting one costs seconds on a loaded machine); the
other commands run in-process through ``crlkit.cli.main``, which is what ``python -m
crlkit`` calls.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from crlkit.cli import main
from crlkit.train import read_checkpoint

ROOT = Path(__file__).resolve().parents[2]
STEPS = 400
ARGS = ["--model", "vae", "--dataset", "synthetic", "--seed", "4", "--threads", "1", "--no-progress",
        "--set", "batch_size=8", "--set", "mlp_hidden=8", "--set", "mlp_depth=1", "--set", "num_latents=2",
        "--set", "checkpoint_every=25", "--set", "log_every=5"]


def test_kill_9_after_the_first_checkpoint_then_resume_equals_an_uninterrupted_run(tmp_path, capsys):
    killed, full = tmp_path / "killed", tmp_path / "full"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.Popen([sys.executable, "-m", "crlkit", "train", *ARGS, "--steps", str(STEPS), "--out",
                          str(killed)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not (killed / "checkpoint.pt").exists() and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    p.send_signal(signal.SIGKILL)
    _, err = p.communicate(timeout=60)
    assert p.returncode == -signal.SIGKILL, f"the run ended before it could be killed: {err.decode()[-500:]}"
    at = read_checkpoint(killed / "checkpoint.pt")["step"]
    assert 0 < at < STEPS and not (killed / "summary.json").exists()

    assert main(["train", *ARGS, "--steps", str(STEPS), "--out", str(killed), "--resume"]) == 0
    assert main(["train", *ARGS, "--steps", str(STEPS), "--out", str(full)]) == 0
    a, b = read_checkpoint(full / "checkpoint.pt"), read_checkpoint(killed / "checkpoint.pt")
    assert a["step"] == b["step"] == STEPS
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert all(torch.equal(a["optimizers"]["main"]["state"][i]["exp_avg_sq"],
                           b["optimizers"]["main"]["state"][i]["exp_avg_sq"]) for i in a["optimizers"]["main"]["state"])
    assert (full / "log.csv").read_text() == (killed / "log.csv").read_text()


def _one_line_exit_2(rc: int, capsys, *needles: str) -> None:
    err = capsys.readouterr().err
    assert rc == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in err, err


class _Evil:
    """Unpickling it would create a file: a checkpoint that runs code."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _torch_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def test_truncated_and_foreign_checkpoints_give_one_line(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["train", *ARGS, "--steps", "10", "--out", str(run_dir)]) == 0
    ckpt = run_dir / "checkpoint.pt"
    whole = ckpt.read_bytes()
    marker = tmp_path / "pwned"
    foreign = {
        "truncated": whole[: len(whole) // 2],
        "empty": b"",
        "random bytes": os.urandom(4096),
        "a pickle that runs code": pickle.dumps(_Evil(str(marker))),
        "a torch file without crlkit state": _torch_bytes({"weights": torch.zeros(3)}),
    }
    capsys.readouterr()
    for what, data in foreign.items():
        ckpt.write_bytes(data)
        rc = main(["evaluate", str(run_dir), "--out", str(tmp_path / "m.json")])
        _one_line_exit_2(rc, capsys, str(ckpt))
        rc = main(["train", *ARGS, "--steps", "20", "--out", str(run_dir), "--resume"])
        _one_line_exit_2(rc, capsys, str(ckpt))
        assert not marker.exists(), what
        assert ckpt.read_bytes() == data, what  # a failed resume leaves the file as it was


def test_existing_run_without_resume_or_overwrite_exits_2_and_is_untouched(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["train", *ARGS, "--steps", "10", "--out", str(run_dir)]) == 0
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    capsys.readouterr()
    rc = main(["train", *ARGS, "--steps", "20", "--seed", "5", "--out", str(run_dir)])
    _one_line_exit_2(rc, capsys, str(run_dir), "--resume", "--overwrite")
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before
    assert main(["train", *ARGS, "--steps", "5", "--out", str(run_dir), "--overwrite"]) == 0
    assert read_checkpoint(run_dir / "checkpoint.pt")["step"] == 5


def test_evaluate_writes_a_collapsed_latents_infinite_tc_as_null_with_its_reason(tmp_path, capsys):
    from crlkit.train import save_checkpoint

    run_dir = tmp_path / "run"
    assert main(["train", *ARGS, "--steps", "2", "--out", str(run_dir)]) == 0
    state = read_checkpoint(run_dir / "checkpoint.pt")
    last = [k for k, v in state["model"].items() if k.startswith("encoder.") and v.dim() == 2][-1]
    state["model"][last][0] = 0.0  # latent 0's posterior mean no longer depends on x: a collapsed latent
    save_checkpoint(run_dir / "checkpoint.pt", state)
    out = tmp_path / "metrics.json"
    assert main(["evaluate", str(run_dir), "--metrics", "unsupervised", "--samples", "200", "--test-samples", "100",
                 "--out", str(out)]) == 0

    def reject(name):
        raise ValueError(f"not strict JSON: {name}")

    scores = json.loads(out.read_text(), parse_constant=reject)
    assert scores["gaussian_total_correlation"] is None
    assert scores["nonfinite"] == {"gaussian_total_correlation": "inf"}
