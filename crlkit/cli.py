"""``crlkit`` command line: one subcommand per capability.

Each subcommand lives in ``crlkit.commands.<module>`` and exposes ``register(subparsers)``.
User errors (:class:`crlkit.CrlkitError`) print one line and exit 2, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from crlkit import __version__
from crlkit.commands._options import HelpFormatter
from crlkit.errors import CrlkitError

# Order here is the order of `crlkit --help`.
COMMAND_MODULES = (
    "crlkit.commands.data",       # data show
    "crlkit.commands.train",      # train, traverse
    "crlkit.commands.evaluate",   # evaluate
    "crlkit.commands.shortcut",   # shortcut
    "crlkit.commands.impossibility",  # impossibility
    "crlkit.commands.identify",   # identify
    "crlkit.commands.study",      # study run, status, export, report
    "crlkit.commands.demo",       # demo
    "crlkit.commands.methods",    # methods (assumption contracts)
)


class _Parser(argparse.ArgumentParser):
    """argparse's own usage errors as one line, like every other crlkit error:
    ``crlkit train: error: argument --seed: expected an integer >= 0; got -1`` and exit 2
    (``crlkit train --help`` shows the usage)."""

    def error(self, message):
        message = " ".join(str(message).split())
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="crlkit", description="Causal representation learning toolkit. `crlkit COMMAND --help` "
                                                "lists a command's flags (one vocabulary: --set, --data-set, --seed, "
                                                "--steps, --samples, --device, --threads, --out).",
                     epilog="examples:\n  crlkit demo --out runs/demo\n"
                            "  crlkit train --model beta_vae --dataset dsprites --steps 3000 --out runs/bvae\n"
                            "  crlkit evaluate runs/bvae --out runs/bvae/metrics.json",
                     formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"crlkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for mod_name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(mod_name)
        except ModuleNotFoundError as e:
            if e.name != mod_name:
                raise
            continue
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version or a usage error (already printed): its exit code
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        rc = args.func(args)
    except CrlkitError as e:
        print(f"crlkit: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("crlkit: interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
