"""One look for every figure crlkit draws on a page: a colour-blind-safe palette and type
sizes that stay legible at 1280 px.

Figures are saved at ``DPI`` = 100 and shown at their natural size on a page whose content
column is ``MAX_FIGURE_PX`` wide, so a point of text is 100 / 72 = 1.39 px on screen: the
smallest text used (``SMALL_PT`` = 9 pt) is 12.5 px, above the 10 px floor. Figures are at most
``MAX_FIGURE_IN`` inches wide so the page never shrinks them.
"""

from __future__ import annotations

import contextlib

# Okabe & Ito (2008), "Color Universal Design": eight colours distinguishable under the common
# colour-vision deficiencies, and of distinct lightness for greyscale.
OKABE_ITO = {
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
    "black": "#000000",
}
#: the cycle used for categories, darkest-contrast first (yellow last: weak on white)
CYCLE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
#: the perceptually uniform, colour-vision-deficiency-safe colormap for continuous values
CMAP = "cividis"
GOOD, BAD, NEUTRAL = OKABE_ITO["bluish_green"], OKABE_ITO["vermillion"], "#777777"

DPI = 100              # dots per inch of every saved figure (1 inch = 100 px on the page)
MAX_FIGURE_PX = 1040   # width of the page's content column in CSS px
MAX_FIGURE_IN = MAX_FIGURE_PX / DPI
BASE_PT = 11           # body text of figures: 15 px
SMALL_PT = 10          # ticks, legends: 14 px (the smallest text in a figure)

RC = {
    "font.size": BASE_PT,
    "axes.titlesize": BASE_PT,
    "axes.labelsize": BASE_PT,
    "xtick.labelsize": SMALL_PT,
    "ytick.labelsize": SMALL_PT,
    "legend.fontsize": SMALL_PT,
    "figure.titlesize": BASE_PT + 1,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": False,
    "savefig.dpi": DPI,
    "figure.dpi": DPI,
    "image.cmap": CMAP,
}


def pyplot():
    """matplotlib.pyplot on the Agg backend with crlkit's style applied."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from cycler import cycler

    plt.rcParams.update(RC)
    plt.rcParams["axes.prop_cycle"] = cycler(color=list(CYCLE))
    return plt


def figure(width_in: float, height_in: float, **subplots_kw):
    """``plt.subplots`` with the width clipped to the page column; returns ``(fig, axes)``."""
    plt = pyplot()
    return plt.subplots(figsize=(min(width_in, MAX_FIGURE_IN), height_in), constrained_layout=True,
                        **subplots_kw)


@contextlib.contextmanager
def quiet():
    """Silence library warnings (scikit-learn convergence, numerical) while a page is built:
    the console shows progress lines only. Errors still raise."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
