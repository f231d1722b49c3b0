"""Studies at scale: grids of runs trained as Ray Tune trials, a SQLite results store, and
the analysis of Locatello et al. (2019) on what was trained.

>>> import crlkit.study
>>> crlkit.study.run("my_grid.yaml", "studies/mini", seeds=[0, 1])   # doctest: +SKIP
>>> df = crlkit.study.load("studies/mini")                            # doctest: +SKIP

- :mod:`crlkit.study.grid`     presets and YAML grids, validated; runs and their ids
- :mod:`crlkit.study.store`    ``DIR/study.sqlite``
- :mod:`crlkit.study.execute`  one run: train (resume) and score, without Ray
- :mod:`crlkit.study.runner`   the driver on Ray Tune
- :mod:`crlkit.study.analysis` tables, correlations, variance shares, model selection, findings
- :mod:`crlkit.study.report`   ``DIR/report/index.html``
"""

from crlkit.study.grid import PRESETS, Grid, Run, load_grid


def run(grid, out, **kwargs) -> dict:
    """Run or continue a study (see :func:`crlkit.study.runner.run`)."""
    from crlkit.study.runner import run as _run

    return _run(grid, out, **kwargs)


def load(directory, *, udr: bool = True):
    """The study in ``directory`` as a pandas DataFrame, one row per recorded run (see
    :func:`crlkit.study.analysis.load`)."""
    from crlkit.study.analysis import load as _load

    return _load(directory, udr=udr)


__all__ = ["PRESETS", "Grid", "Run", "load_grid", "run", "load"]
