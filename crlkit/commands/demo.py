"""``crlkit demo``: crlkit's story on one page, ``OUT/index.html`` (built by
:mod:`crlkit.report.demo`); ``--screenshots`` also writes one PNG per section under
``OUT/shots/`` with the system's Chromium.
"""

from __future__ import annotations

import os
from pathlib import Path

from crlkit.commands._options import HelpFormatter, add_out, add_seed, examples


def register(sub) -> None:
    from crlkit.report.demo import SECTION_IDS

    p = sub.add_parser("demo", help="write crlkit's story as one HTML page to OUT/index.html",
                       description="Train, measure and draw each step of the story (shortcuts, the causal view, "
                                   "the latent causal model, disentanglement, its impossibility, identifiable "
                                   "methods) and write OUT/index.html with a page per dataset.",
                       epilog=examples("crlkit demo --quick --out runs/demo_quick",
                                       "crlkit demo --out runs/demo --screenshots",
                                       "crlkit demo --only limits crl --study runs/study --out runs/demo"),
                       formatter_class=HelpFormatter)
    add_out(p, default="runs/demo", help="directory of the page and its images")
    add_seed(p)
    p.add_argument("--quick", action="store_true",
                   help="reduced sizes (under a minute on 2 cores): for checks, not for reading the numbers")
    p.add_argument("--only", nargs="+", default=None, metavar="SECTION",
                   help=f"build only these sections: {', '.join(SECTION_IDS)}")
    p.add_argument("--study", default=None, metavar="DIR",
                   help="a study directory (crlkit study run) whose findings section 5 shows "
                        "(default: the newest under runs/ that holds study.sqlite)")
    p.add_argument("--screenshots", action="store_true",
                   help="also write one PNG per section to OUT/shots/ (needs chromium; skipped with a line "
                        "when it is missing)")
    p.set_defaults(func=run)


def run(args) -> int:
    from crlkit.report.demo import build_demo

    res = build_demo(args.out, seed=args.seed, quick=args.quick, only=args.only, study_dir=args.study,
                     log=lambda m: print(m, flush=True))
    print(f"wrote {res['path']} in {res['seconds']:.0f} s"
          + (f" ({res['failed']} section(s) failed)" if res["failed"] else ""), flush=True)
    if args.screenshots:
        from crlkit.report.browser import INSTALL_HINT, find_chromium, screenshot_sections

        if find_chromium() is None:
            print(f"screenshots skipped: no chromium ({INSTALL_HINT})", flush=True)
            return 1 if (res["failed"] or os.environ.get("CI") == "true") else 0
        shots = screenshot_sections(res["path"], Path(args.out) / "shots")
        print(f"wrote {len(shots)} screenshots to {Path(args.out) / 'shots'}", flush=True)
    return 1 if res["failed"] else 0
