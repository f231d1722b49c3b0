"""``crlkit`` command line: one subcommand per capability.

Each subcommand lives in ``crlkit.commands.<module>`` and exposes ``register(subparsers)``.
User errors (:class:`crlkit.CrlkitError`) print one line and exit 2, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from crlkit import __version__
from crlkit.errors import CrlkitError

# Order here is the order of `crlkit --help`.
COMMAND_MODULES = (
    "crlkit.commands.data",       # data show
    "crlkit.commands.train",      # train, traverse
    "crlkit.commands.evaluate",   # evaluate
    "crlkit.commands.shortcut",   # shortcut
    "crlkit.commands.impossibility",  # impossibility
    "crlkit.commands.identify",   # identify
    "crlkit.commands.demo",       # demo
    "crlkit.commands.methods",    # methods (assumption contracts)
)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own usage errors: exit 2, no traceback (as argparse)
        self.print_usage(sys.stderr)
        self.exit(2, f"crlkit: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="crlkit", description="Causal representation learning toolkit.")
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
    args = parser.parse_args(argv)
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
