"""``crlkit data list`` and ``crlkit data show NAME --out DIR``: look at a dataset
(the pictures are drawn by :mod:`crlkit.data.show`)."""

from __future__ import annotations

from pathlib import Path

from crlkit.commands._options import HelpFormatter, add_data_set, add_out, add_samples, add_seed, examples
from crlkit.data.show import dataset_from_assignments, show_dataset, traversal_factors  # noqa: F401 (library names)
from crlkit.report.sections import data_section as demo_section  # noqa: F401 (a section of `crlkit demo`)


def register(sub) -> None:
    p = sub.add_parser("data", help="list datasets, or write sample grids / traversals of one",
                       description="Look at the registered datasets: `data list` names them with their factors; "
                                   "`data show NAME` draws samples, traversals and the causal graph.",
                       epilog=examples("crlkit data list", "crlkit data show dsprites --out runs/data/dsprites"),
                       formatter_class=HelpFormatter)
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    lst = dsub.add_parser("list", help="list the registered datasets with their factors",
                          description="One line per registered dataset: observation shape, factors (with their "
                                      "number of values) and whether it has a causal graph.",
                          epilog=examples("crlkit data list"), formatter_class=HelpFormatter)
    lst.set_defaults(func=run_list)

    show = dsub.add_parser("show", help="write samples.png, traversals.png and info.json of a dataset",
                           description="Write OUT/samples.png (a sample grid, or a scatter matrix for vector data), "
                                       "OUT/traversals.png (one factor varied per row), OUT/graph.png (when the "
                                       "dataset has a causal graph) and OUT/info.json.",
                           epilog=examples("crlkit data show dsprites --out runs/data/dsprites --samples 64",
                                           "crlkit data show synthetic --data-set latents=3 --out runs/data/synthetic",
                                           "crlkit data show dsprites --data-set path=dsprites.npz --out runs/data/real"),
                           formatter_class=HelpFormatter)
    show.add_argument("name", help="dataset name (see `crlkit data list`)")
    add_out(show, help="output directory")
    add_samples(show, default=64, help="samples drawn for the grid")
    add_seed(show)
    add_data_set(show)
    show.set_defaults(func=run_show)


def run_list(args) -> int:
    from crlkit.contracts import describe_dataset
    from crlkit.data import list_datasets

    for name in list_datasets():
        try:
            ds = dataset_from_assignments(name, [])
        except Exception as e:  # a dataset that needs options still gets listed
            print(f"{name:22s} (needs options: {e})")
            continue
        if ds.factor_sizes is None:
            factors = ", ".join(ds.factor_names)
            kind = f"vector {tuple(ds.observation_shape)}, continuous latents"
        else:
            factors = ", ".join(f"{n}[{s}]" for n, s in zip(ds.factor_names, ds.factor_sizes))
            kind = f"{'image' if len(ds.observation_shape) == 3 else 'vector'} {tuple(ds.observation_shape)}"
        graph = ", causal graph" if getattr(ds, "graph", None) is not None else ""
        print(f"{name:22s} {kind}{graph}: {factors}\n{'':22s} contract: {describe_dataset(ds)}")
    return 0


def run_show(args) -> int:
    ds = dataset_from_assignments(args.name, args.data_options)
    written = show_dataset(ds, Path(args.out), n=args.samples, seed=args.seed)
    for note in written.pop("notes", []):
        print(note)
    for path in written.values():
        print(f"wrote {path}")
    return 0
