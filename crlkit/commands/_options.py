"""The one command-line vocabulary shared by every ``crlkit`` command.

=====================  ====================================================================
``--set key=value``    method and training options (validated by the method's config)
``--data-set k=v``     dataset options (validated by the dataset's signature)
``--device``           ``cpu``, ``cuda`` or ``cuda:N``
``--threads``          torch CPU threads (default :data:`DEFAULT_THREADS` everywhere)
``--seed``             an integer >= 0
``--steps``            training steps, and nothing else
``--samples``          how many data samples a command draws (``--test-samples``: its held-out split)
``--no-progress``      no progress bar or progress lines on a long step
``--out``              a directory (a run, a study, a page), or the file itself where the
                       command's whole output is one file (``evaluate``, ``traverse``, ``study export``)
``--resume``           continue the run in ``--out``
``--overwrite``        replace the run in ``--out``
=====================  ====================================================================

Every numeric flag is range-checked by its argparse ``type`` (so before any work starts);
a bad value gives one line naming the flag and the valid range, and exit 2. The types carry
their bounds (``parse.kind``, ``parse.lo``, ``parse.hi``), so a test can find every numeric flag
of every command and throw out-of-range values at it (tests/test_cli_properties.py).
"""

from __future__ import annotations

import argparse
import contextlib
from typing import Callable, Iterator

#: torch CPU threads unless ``--threads`` says otherwise: the small models of crlkit run
#: faster on one thread than on two on a 2-core machine (bench/RESULTS.md).
DEFAULT_THREADS = 1


def int_range(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    """argparse type: an integer in ``[lo, hi]`` (either bound may be None)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer{_bounds(lo, hi)}; got {text!r}") from None
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"expected an integer{_bounds(lo, hi)}; got {value}")
        return value

    parse.__name__ = "int"
    parse.kind, parse.lo, parse.hi = "int", lo, hi
    return parse


def float_range(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
                hi_open: bool = False) -> Callable[[str], float]:
    """argparse type: a finite float in the given (closed unless ``*_open``) interval."""
    import math

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        ok = math.isfinite(value)
        if ok and lo is not None:
            ok = value > lo if lo_open else value >= lo
        if ok and hi is not None:
            ok = value < hi if hi_open else value <= hi
        if not ok:
            left = "(" if lo_open else "["
            right = ")" if hi_open else "]"
            rng = f" in {left}{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}{right}"
            raise argparse.ArgumentTypeError(f"expected a number{rng}; got {text!r}")
        return value

    parse.__name__ = "float"
    parse.kind, parse.lo, parse.hi = "float", lo, hi
    parse.lo_open, parse.hi_open = lo_open, hi_open
    return parse


def _bounds(lo, hi) -> str:
    if lo is not None and hi is not None:
        return f" in [{lo}, {hi}]"
    if lo is not None:
        return f" >= {lo}"
    if hi is not None:
        return f" <= {hi}"
    return ""


def add_seed(p: argparse.ArgumentParser, *, default: int = 0, help: str = "random seed") -> None:
    p.add_argument("--seed", type=int_range(0, 2**32 - 1), default=default, metavar="S",
                   help=f"{help}, an integer >= 0 (default {default})")


def add_steps(p: argparse.ArgumentParser, *, default: int | None = None, required: bool = False,
              help: str = "training steps") -> None:
    suffix = "" if default is None else f" (default {default})"
    p.add_argument("--steps", type=int_range(0, 10**9), default=default, required=required, metavar="N",
                   help=f"{help}, an integer >= 0{suffix}")


def add_threads(p: argparse.ArgumentParser, *, help: str = "CPU threads") -> None:
    p.add_argument("--threads", type=int_range(1, 1024), default=DEFAULT_THREADS, metavar="N",
                   help=f"{help} (default {DEFAULT_THREADS}: crlkit's small models run fastest on 1; "
                        "restored when the command ends)")


def add_device(p: argparse.ArgumentParser, *, help: str = "where to train and encode") -> None:
    p.add_argument("--device", default="cpu", metavar="DEVICE", help=f"{help}: cpu (default), cuda or cuda:N")


def add_samples(p: argparse.ArgumentParser, *, default: int, minimum: int = 1, help: str = "samples drawn",
                flag: str = "--samples") -> None:
    """``--samples N`` (and ``--test-samples N`` with ``flag=``): how many data samples a
    command draws, an integer >= ``minimum``."""
    p.add_argument(flag, type=int_range(minimum, 10**9), default=default, metavar="N",
                   help=f"{help}, an integer >= {minimum} (default {default})")


def add_progress(p: argparse.ArgumentParser) -> None:
    """``--no-progress``: long steps show a bar with the time left on a terminal and a line every
    ~30 s otherwise; this turns both off."""
    p.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no progress bar (on a terminal) or progress lines (otherwise)")


def add_set(p: argparse.ArgumentParser, *, help: str = "method or training option, e.g. --set beta=8 "
                                                        "--set batch_size=32 (repeatable)") -> None:
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help)


def add_data_set(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-set", dest="data_options", action="append", default=[], metavar="KEY=VALUE",
                   help="dataset option, e.g. --data-set path=dsprites.npz (repeatable)")


def add_out(p: argparse.ArgumentParser, *, required: bool = True, default: str | None = None,
            help: str = "output directory") -> None:
    suffix = "" if default is None else f" (default {default})"
    p.add_argument("--out", required=required and default is None, default=default, metavar="PATH",
                   help=help + suffix)


def add_run_mode(p: argparse.ArgumentParser) -> None:
    """``--resume`` / ``--overwrite``: what to do when ``--out`` already holds a run."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint")
    g.add_argument("--overwrite", action="store_true",
                   help="replace the run in --out (without it, an existing run is never touched)")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Wraps a command's description to the terminal; keeps the examples epilog as written."""

    def _fill_text(self, text, width, indent):
        if text.lstrip().startswith("examples:"):
            return super()._fill_text(text, width, indent)
        return argparse.HelpFormatter._fill_text(self, text, width, indent)


def examples(*lines: str) -> str:
    """The epilog every command's help ends with."""
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Set torch's intra-op threads for the duration of a command and restore them after."""
    import torch

    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)
