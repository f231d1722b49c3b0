"""The Trainer class and its callbacks: any module trains through it with logs, checkpoints,
exact resume and NaN stops; hooks run in order and their state is checkpointed; process-wide
settings come back after a run, also one that raised; writes are durable and JSON is strict."""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest
import torch
from torch import nn

from crlkit.errors import CrlkitError
from crlkit.files import atomic_write_json, atomic_write_text
from crlkit.train import Callback, Trainer, TrainingDiverged, read_checkpoint, train
from crlkit.train import trainer as trainer_module
from crlkit.train.callbacks import Progress, read_log_lines
from models.toy import ToyVectors  # tests/models/toy.py; pytest puts tests/ on sys.path


class Regression(nn.Module):
    """Not a crlkit Method: a linear model with its own ``training_step``, like a shortcut classifier."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 1)

    def training_step(self, batch, step, optimizers):
        loss = (self.lin(batch["x"]).squeeze(1) - batch["y"]).square().mean()
        optimizers["main"].zero_grad()
        loss.backward()
        optimizers["main"].step()
        return {"loss": loss.detach(), "weight_norm": self.lin.weight.detach().norm()}


class Stream:
    """An infinite seeded batch stream with state_dict / load_state_dict (NumPy RNG state)."""

    def __init__(self, seed=0, nan_from=None):
        self.rng, self.n, self.nan_from = np.random.default_rng(seed), 0, nan_from

    def __next__(self):
        self.n += 1
        x = self.rng.normal(size=(8, 3)).astype(np.float32)
        y = x @ np.array([1.0, -2.0, 0.5], np.float32)
        if self.nan_from is not None and self.n >= self.nan_from:
            y = y * np.nan
        return {"x": torch.from_numpy(x), "y": torch.from_numpy(y)}

    def state_dict(self):
        return {"rng": self.rng.bit_generator.state, "n": self.n}

    def load_state_dict(self, state):
        self.rng.bit_generator.state, self.n = state["rng"], state["n"]


class Recorder(Callback):
    """Records every hook call; its state (a running count of steps) is checkpointed."""

    key = "recorder"

    def __init__(self):
        self.calls, self.count, self.loaded = [], 0, None

    def on_fit_start(self, trainer):
        self.calls.append(("start", trainer.step))

    def on_step_start(self, trainer, step):
        self.calls.append(("step_start", step))

    def on_step_end(self, trainer, step, terms):
        self.count += 1
        self.calls.append(("step_end", step))

    def on_log(self, trainer, rows):
        self.calls.append(("log", [r["step"] for r in rows]))

    def on_checkpoint(self, trainer, step):
        self.calls.append(("checkpoint", step))

    def on_fit_end(self, trainer, summary):
        self.calls.append(("end", summary is not None))

    def state_dict(self):
        return {"count": self.count, "array": np.arange(3)}  # NumPy is made plain for weights_only

    def load_state_dict(self, state):
        self.loaded, self.count = state, state["count"]


def make_trainer(out, steps, *, seed=0, callbacks=(), nan_from=None, **kw):
    torch.manual_seed(seed)
    model = Regression()
    opt = {"main": torch.optim.Adam(model.parameters(), lr=1e-2)}
    return Trainer(model, opt, Stream(seed, nan_from), steps=steps, out_dir=out, callbacks=callbacks,
                   log_every=2, checkpoint_every=4, name="regression", **kw)


def test_trainer_trains_any_module_and_resumes_exactly(tmp_path):
    full = make_trainer(tmp_path / "full", 10)
    s = full.fit()
    assert s["steps"] == 10 and s["final_loss"] < 10 and set(s["terms"]) == {"weight_norm"}
    part = make_trainer(tmp_path / "part", 6)
    part.fit()
    assert read_checkpoint(tmp_path / "part" / "checkpoint.pt")["step"] == 6
    again = make_trainer(tmp_path / "part", 10, seed=99)  # other initial weights: the checkpoint wins
    assert again.fit(resume=True)["resumed_from"] == 6
    a, b = read_checkpoint(tmp_path / "full" / "checkpoint.pt"), read_checkpoint(tmp_path / "part" / "checkpoint.pt")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert (tmp_path / "full" / "log.csv").read_text() == (tmp_path / "part" / "log.csv").read_text()
    assert (tmp_path / "full" / "log.csv").read_text().splitlines()[0] == "step,loss,weight_norm"


def test_hooks_run_in_order_and_callback_state_is_checkpointed(tmp_path):
    rec = Recorder()
    make_trainer(tmp_path, 5, callbacks=[rec]).fit()
    assert rec.calls[0] == ("start", 0) and rec.calls[-1] == ("end", True)
    assert rec.calls[1:4] == [("step_start", 0), ("step_end", 0), ("step_start", 1)]
    logs = [c for c in rec.calls if c[0] == "log"]
    assert logs == [("log", [1, 2]), ("log", [3, 4]), ("log", [5])]
    assert [c for c in rec.calls if c[0] == "checkpoint"] == [("checkpoint", 4), ("checkpoint", 5)]
    state = read_checkpoint(tmp_path / "checkpoint.pt")  # weights_only=True: the NumPy array became a list
    assert state["callbacks"]["recorder"] == {"count": 5, "array": [0, 1, 2]}
    rec2 = Recorder()
    make_trainer(tmp_path, 7, callbacks=[rec2]).fit(resume=True)
    assert rec2.loaded["count"] == 5 and rec2.count == 7 and rec2.calls[0] == ("start", 5)


def test_method_callbacks_are_called(tmp_path):
    rec = Recorder()

    class WithCallbacks(Regression):
        def callbacks(self, train_config):
            assert train_config == {"lr": 1}
            return [rec]

    model = WithCallbacks()
    Trainer(model, {"main": torch.optim.SGD(model.parameters(), lr=0.1)}, Stream(), steps=3, out_dir=None,
            train_config={"lr": 1}).fit()
    assert rec.count == 3 and rec.calls[-1] == ("end", True)


def test_nan_stops_before_logging_or_checkpointing_the_bad_window(tmp_path):
    rec = Recorder()
    with pytest.raises(TrainingDiverged, match=r"regression: loss term 'weight_norm' is nan at step 7"):
        make_trainer(tmp_path, 20, nan_from=7, callbacks=[rec]).fit()
    assert read_checkpoint(tmp_path / "checkpoint.pt")["step"] == 4
    assert read_log_lines(tmp_path / "log.csv")[1][-1].startswith("6,")
    assert rec.calls[-1] == ("end", False)  # on_fit_end(None) ran


class Boom(Exception):
    pass


class FakeLibc:
    """Records mallopt / malloc_trim calls instead of changing the allocator."""

    def __init__(self):
        self.calls = []

    def mallopt(self, param, value):
        self.calls.append((param, value))

    def malloc_trim(self, pad):
        self.calls.append(("trim", pad))


def test_process_settings_are_restored_after_an_error(tmp_path, monkeypatch):
    libc = FakeLibc()
    monkeypatch.setattr(trainer_module, "_glibc", lambda: libc)
    threads, cudnn = torch.get_num_threads(), torch.backends.cudnn.benchmark
    rng = torch.get_rng_state()

    class Fails(Callback):
        def on_step_end(self, trainer, step, terms):
            assert torch.get_num_threads() == 1 + (threads == 1)
            torch.backends.cudnn.benchmark = not cudnn  # a callback changing process state inside the run
            torch.rand(3)  # and drawing from torch's global RNG
            if step == 2:
                raise Boom

    with pytest.raises(Boom):
        make_trainer(tmp_path, 5, callbacks=[Fails()], threads=1 + (threads == 1), tune_malloc=True,
                     torch_seed=7).fit()
    assert torch.get_num_threads() == threads and torch.backends.cudnn.benchmark == cudnn
    assert torch.equal(torch.get_rng_state(), rng)
    m_mmap, m_trim, default = trainer_module._M_MMAP_THRESHOLD, trainer_module._M_TRIM_THRESHOLD, 128 * 1024
    assert libc.calls[:2] == [(m_mmap, 1 << 30), (m_trim, 1 << 30)]
    assert libc.calls[2:] == [(m_mmap, default), (m_trim, default), ("trim", 0)]


def test_train_restores_threads(tmp_path):
    before = torch.get_num_threads()
    s = train("vae", ToyVectors(), steps=2, seed=0, out_dir=tmp_path, threads=1 + (before == 1), progress=False,
              overrides={"mlp_hidden": 8, "mlp_depth": 1, "log_every": 1})
    assert s["torch_threads"] == 1 + (before == 1) and torch.get_num_threads() == before


def test_progress_lines_off_a_terminal(tmp_path):
    out = io.StringIO()
    make_trainer(tmp_path, 6, callbacks=[Progress("reg", mode="lines", interval=0.0, stream=out)]).fit()
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and lines[-1].startswith("reg: step 6/6 (100%), ")
    assert all("steps/s" in line and " left" in line and "loss" in line for line in lines)


def test_csv_log_drops_a_torn_line_and_rows_past_the_checkpoint(tmp_path):
    make_trainer(tmp_path / "full", 8).fit()
    make_trainer(tmp_path / "crash", 4).fit()
    log = tmp_path / "crash" / "log.csv"
    with open(log, "a") as f:  # a crashed run wrote rows 5-6 after its checkpoint, then tore row 7
        f.write("5,1.0,2.0\n6,1.0,2.0\n7,0.12")
    assert read_log_lines(log)[1][-1].startswith("6,")
    make_trainer(tmp_path / "crash", 8).fit(resume=True)
    assert log.read_text() == (tmp_path / "full" / "log.csv").read_text()


def test_existing_run_needs_resume_or_overwrite(tmp_path):
    opts = {"mlp_hidden": 8, "mlp_depth": 1, "log_every": 1}
    train("vae", ToyVectors(), steps=3, seed=0, out_dir=tmp_path, overrides=opts, progress=False)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(CrlkitError, match=f"{tmp_path} already holds a run .*--resume.*--overwrite"):
        train("beta_vae", ToyVectors(), steps=2, seed=1, out_dir=tmp_path, overrides=opts, progress=False)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    with pytest.raises(CrlkitError, match="exclude each other"):
        train("vae", ToyVectors(), steps=3, seed=0, out_dir=tmp_path, overrides=opts, resume=True, overwrite=True)
    s = train("beta_vae", ToyVectors(), steps=2, seed=1, out_dir=tmp_path, overrides=opts, progress=False,
              overwrite=True)
    assert s["model"] == "beta_vae" and read_checkpoint(tmp_path / "checkpoint.pt")["step"] == 2
    assert len((tmp_path / "log.csv").read_text().splitlines()) == 3
    with pytest.raises(CrlkitError, match="already holds a run"):  # the Trainer guards its own checkpoint too
        make_trainer(tmp_path, 2).fit()


def test_atomic_writes_fsync_file_and_directory(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def spy(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}") if os.path.exists("/proc/self/fd") else fd)
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    atomic_write_text(tmp_path / "a.txt", "hello")
    assert (tmp_path / "a.txt").read_text() == "hello"
    if os.path.exists("/proc/self/fd"):
        assert any(".a.tmp" in s for s in synced) and str(tmp_path) in synced
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_json_is_strict_and_records_non_finite_values(tmp_path):
    p = atomic_write_json(tmp_path / "s.json", {"tc": float("inf"), "m": {"x": np.float32("nan"), "y": 1.5},
                                                 "curve": [1.0, -np.inf]})

    def reject(name):
        raise ValueError(f"non-standard JSON constant {name}")

    data = json.loads(p.read_text(), parse_constant=reject)
    assert data["tc"] is None and data["m"] == {"x": None, "y": 1.5} and data["curve"] == [1.0, None]
    assert data["nonfinite"] == {"tc": "inf", "m.x": "nan", "curve.1": "-inf"}
    assert "nonfinite" not in json.loads(atomic_write_json(tmp_path / "t.json", {"a": 1}).read_text())


def test_summary_and_config_are_strict_json(tmp_path):
    s = train("vae", ToyVectors(), steps=0, seed=0, out_dir=tmp_path, progress=False,
              overrides={"mlp_hidden": 8, "mlp_depth": 1})
    assert np.isnan(s["final_loss"])  # nothing trained, nothing logged

    def reject(name):
        raise ValueError(name)

    summary = json.loads((tmp_path / "summary.json").read_text(), parse_constant=reject)
    assert summary["final_loss"] is None and summary["nonfinite"] == {"final_loss": "nan"}
    assert read_checkpoint(tmp_path / "checkpoint.pt")["step"] == 0


def test_progress_bar_on_request(tmp_path):
    out = io.StringIO()
    make_trainer(tmp_path, 4, callbacks=[Progress("reg", mode="bar", stream=out)]).fit()
    assert "reg: 100%" in out.getvalue() and "4/4" in out.getvalue()


def test_a_checkpoint_of_another_model_is_refused_in_one_line(tmp_path):
    make_trainer(tmp_path, 2).fit()
    model = nn.Linear(4, 2)  # other shapes than the checkpoint's Regression
    model.training_step = Regression.training_step.__get__(model)
    other = Trainer(model, {"main": torch.optim.SGD(model.parameters(), lr=0.1)}, Stream(), steps=4, out_dir=tmp_path)
    with pytest.raises(CrlkitError, match=r"checkpoint.pt does not fit this model") as err:
        other.fit(resume=True)
    assert "\n" not in str(err.value)
