"""``crlkit methods``: the method contract table, what each registered method needs from a
dataset and what it then guarantees (with the theorem and the paper); with ``--dataset``, the
check of every method against that dataset.

    crlkit methods
    crlkit methods --dataset ivae_segments --data-set segments=5
"""

from __future__ import annotations

import argparse

from crlkit.commands._options import add_data_set, examples


def register(sub) -> None:
    p = sub.add_parser(
        "methods", help="what each method needs from the data and what it then guarantees",
        description="The assumption contracts of the registered methods (crlkit.contracts): the structure each "
                    "needs (structural requirements refuse a dataset; broken assumptions stop a run unless "
                    "--allow-mismatch), the identifiability it guarantees, the theorem and the paper.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=examples("crlkit methods", "crlkit methods --dataset ivae_segments --data-set segments=5"))
    p.add_argument("--dataset", default=None, help="also check every method against this dataset")
    add_data_set(p)
    p.add_argument("--full", action="store_true", help="print the paper of each method too")
    p.set_defaults(func=run)


def run(args) -> int:
    from crlkit.contracts import check, method_table_rows
    from crlkit.models import list_models

    for r in method_table_rows():
        print(f"{r['model']}\n  needs:     {r['needs']}\n  guarantee: {r['guarantee']}\n  theorem:   {r['theorem']}")
        if args.full:
            print(f"  paper:     {r['paper']}")
    if args.dataset:
        from crlkit.config import parse_assignments
        from crlkit.data import dataset_from_options

        ds, _ = dataset_from_options(args.dataset, parse_assignments(args.data_options, flag="--data-set"))
        print(f"\non {args.dataset}:")
        for m in list_models():
            print("  " + check(m, ds).line())
    return 0
