"""Properties of every ``crlkit`` command's flags, found by walking ``build_parser()`` (so commands
added later are covered without touching this file):

- a bad value for any numeric flag (below or above its range, NaN, inf, text) or any choice flag
  ends in exit 2 with exactly one line on stderr, no traceback, nothing on stdout, and no file
  written (the tests run in an empty working directory and compare its listing);
- every numeric flag is range-checked by its argparse type (``int_range`` / ``float_range``), so
  the error comes before any work starts;
- every flag has help text, and every command's help ends with examples.
"""

from __future__ import annotations

import argparse
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crlkit.cli import build_parser, main


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """``(path, parser)`` of every (sub)command, e.g. ``(("data", "show"), parser)``."""
    if path:
        yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen = set()
            for name, sub in action.choices.items():
                if id(sub) not in seen:  # aliases share a parser
                    seen.add(id(sub))
                    yield from _commands(sub, path + (name,))


def _flags(parser: argparse.ArgumentParser):
    """The user-facing actions of one command (no help, no subcommand positional)."""
    return [a for a in parser._actions
            if not isinstance(a, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction))]


def _is_ranged(action) -> bool:
    return getattr(action.type, "kind", None) in ("int", "float")


def _valid(action) -> str:
    """A value the action accepts (for the required flags around the bad one)."""
    if action.choices:
        return str(next(iter(action.choices)))
    if _is_ranged(action):
        lo, hi = action.type.lo, action.type.hi
        if lo is None:
            return str(hi if hi is not None else 0)
        if getattr(action.type, "lo_open", False):
            return str((lo + hi) / 2 if hi is not None else lo + 1)
        return str(lo)
    return "x"


def _base_argv(path, parser, skip) -> list[str]:
    argv = list(path)
    for a in _flags(parser):
        if a is skip:
            continue
        if not a.option_strings:            # positional
            argv.append(_valid(a))
        elif a.required:
            argv += [a.option_strings[-1], _valid(a)]
    return argv


PARSER = build_parser()
COMMANDS = list(_commands(PARSER))
RANGED = [(path, parser, a) for path, parser in COMMANDS for a in _flags(parser) if _is_ranged(a) and a.option_strings]
CHOICES = [(path, parser, a) for path, parser in COMMANDS for a in _flags(parser)
           if a.choices and a.option_strings]


def _out_of_range(action) -> st.SearchStrategy[str]:
    t = action.type
    specials = st.sampled_from(["nan", "-nan", "inf", "-inf", "1e999", "text", "", " ", "1,5", "0x10", "None"])
    parts = [specials, st.text(max_size=12)]
    if t.kind == "int":
        parts.append(st.floats(allow_nan=False, allow_infinity=False).filter(lambda v: v != int(v)).map(repr))
        if t.lo is not None:
            parts.append(st.integers(max_value=t.lo - 1).map(str))
        if t.hi is not None:
            parts.append(st.integers(min_value=t.hi + 1).map(str))
    else:
        if t.lo is not None:
            parts.append(st.floats(max_value=t.lo, exclude_max=not getattr(t, "lo_open", False),
                                   allow_nan=False, allow_infinity=False).map(repr))
        if t.hi is not None:
            parts.append(st.floats(min_value=t.hi, exclude_min=not getattr(t, "hi_open", False),
                                   allow_nan=False, allow_infinity=False).map(repr))
    return st.one_of(parts)


def _rejected(action, text: str) -> bool:
    try:
        action.type(text)
    except (argparse.ArgumentTypeError, ValueError, TypeError):
        return True
    return False


def _check_one_line_error(argv, capsys, cwd):
    before = sorted(os.listdir(cwd))
    rc = main(argv)
    captured = capsys.readouterr()
    assert rc == 2, (argv, rc, captured)
    err = captured.err
    assert err.endswith("\n") and err.count("\n") == 1, (argv, err)
    assert err.startswith("crlkit") and "error" in err, (argv, err)
    assert "Traceback" not in err and captured.out == "", (argv, captured)
    assert sorted(os.listdir(cwd)) == before, argv


@pytest.fixture
def empty_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_walk_finds_the_commands():
    names = {" ".join(p) for p, _ in COMMANDS}
    assert {"train", "traverse", "evaluate", "impossibility", "data show"} <= names
    assert len(RANGED) >= 15 and CHOICES


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_bad_numeric_values_exit_2_with_one_line(data, capsys, empty_cwd):
    path, parser, action = data.draw(st.sampled_from(RANGED), label="flag")
    bad = data.draw(_out_of_range(action).filter(lambda v: _rejected(action, v)), label="value")
    argv = _base_argv(path, parser, action) + [f"{action.option_strings[-1]}={bad}"]
    _check_one_line_error(argv, capsys, empty_cwd)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_bad_choices_exit_2_with_one_line(data, capsys, empty_cwd):
    path, parser, action = data.draw(st.sampled_from(CHOICES), label="flag")
    bad = data.draw(st.text(min_size=1, max_size=12).filter(
        lambda v: v not in action.choices and not v.startswith("-")), label="value")
    argv = _base_argv(path, parser, action) + [action.option_strings[-1], bad]
    _check_one_line_error(argv, capsys, empty_cwd)


def test_every_out_of_range_bound_is_rejected(capsys, empty_cwd):
    """Deterministically, for every ranged flag: just below and just above its bounds."""
    for path, parser, action in RANGED:
        t = action.type
        step = 1 if t.kind == "int" else 1e-9 * max(1.0, abs(t.lo or 0), abs(t.hi or 0))
        cases = ["nan", "text"]
        if t.lo is not None:
            cases.append(str(t.lo if getattr(t, "lo_open", False) else t.lo - step))
        if t.hi is not None:
            cases.append(str(t.hi if getattr(t, "hi_open", False) else t.hi + step))
        for bad in cases:
            assert _rejected(action, bad), (path, action.option_strings, bad)
            argv = _base_argv(path, parser, action) + [f"{action.option_strings[-1]}={bad}"]
            _check_one_line_error(argv, capsys, empty_cwd)


def test_every_numeric_flag_is_range_checked():
    loose = []
    for path, parser in COMMANDS:
        for a in _flags(parser):
            numeric_default = isinstance(a.default, (int, float)) and not isinstance(a.default, bool)
            if a.type in (int, float) or (a.type is None and numeric_default and a.nargs != 0):
                loose.append(f"crlkit {' '.join(path)} {'/'.join(a.option_strings) or a.dest}")
    assert not loose, "numeric flags without int_range/float_range: " + ", ".join(loose)


def test_every_flag_has_help_and_every_command_ends_with_examples():
    missing_help, missing_examples = [], []
    for path, parser in COMMANDS:
        if not (parser.epilog or "").lstrip().startswith("examples:"):
            missing_examples.append(" ".join(path))
        for a in _flags(parser):
            if a.help is None or not str(a.help).strip():
                missing_help.append(f"crlkit {' '.join(path)} {'/'.join(a.option_strings) or a.dest}")
    assert not missing_help, "flags without help: " + ", ".join(missing_help)
    assert not missing_examples, "commands whose help does not end with examples: " + ", ".join(missing_examples)


def test_seed_threads_and_steps_mean_one_thing_everywhere():
    from crlkit.commands._options import DEFAULT_THREADS

    odd = []
    for path, parser in COMMANDS:
        for a in _flags(parser):
            name = f"crlkit {' '.join(path)} {a.option_strings[-1] if a.option_strings else a.dest}"
            lo = getattr(a.type, "lo", None)
            if "--seed" in a.option_strings and not (getattr(a.type, "kind", None) == "int" and lo == 0):
                odd.append(f"{name} (an integer >= 0)")
            if "--threads" in a.option_strings and not (a.default == DEFAULT_THREADS and lo == 1):
                odd.append(f"{name} (default DEFAULT_THREADS = {DEFAULT_THREADS}, >= 1)")
            if "--steps" in a.option_strings and "step" not in (a.help or ""):
                odd.append(f"{name} (training steps only)")
    assert not odd, "flags that break the vocabulary: " + ", ".join(odd)


def test_usage_error_is_one_line(capsys, empty_cwd):
    assert main(["train", "--model", "beta_vae", "--dataset", "dsprites", "--steps", "1", "--out", "o",
                 "--seed", "-1"]) == 2
    err = capsys.readouterr().err
    assert err == "crlkit train: error: argument --seed: expected an integer in [0, 4294967295]; got -1\n"
    assert os.listdir(empty_cwd) == []
