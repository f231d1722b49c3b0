"""``crlkit demo``: one page that walks through crlkit, written to ``OUT/index.html``.

Each capability contributes a section: a function ``demo_section(ctx) -> str`` (an HTML
fragment) in its ``crlkit.commands`` module, which writes its images under ``ctx.out_dir``
and links them relatively. Sections run in order and may leave results for later ones in
``ctx.shared`` (e.g. the trained model directory). The whole demo stays within ~10 minutes
on a 2-core CPU.
"""

from __future__ import annotations

import dataclasses
import html
import importlib
import time
import traceback
from pathlib import Path

# (title, module) in page order; each module defines demo_section(ctx).
SECTIONS = (
    ("Datasets: latent causal models rendered to observations", "crlkit.commands.data"),
    ("Training a disentanglement model", "crlkit.commands.train"),
    ("Scoring the representation", "crlkit.commands.evaluate"),
    ("Shortcut learning: cows and camels", "crlkit.commands.shortcut"),
    ("The impossibility of unsupervised disentanglement", "crlkit.commands.impossibility"),
    ("Causal representation learning: methods that escape it", "crlkit.commands.identify"),
)


@dataclasses.dataclass
class DemoContext:
    out_dir: Path      # where the page and its images go
    seed: int          # one seed for every section
    shared: dict       # results handed from one section to later ones

    def log(self, msg: str) -> None:
        print(f"  {msg}", flush=True)


def register(sub) -> None:
    p = sub.add_parser("demo", help="write an HTML walk-through of crlkit to OUT/index.html")
    p.add_argument("--out", default="runs/demo", help="output directory (default runs/demo)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", nargs="*", default=None,
                   help="run only these sections (module suffixes: data train evaluate shortcut impossibility identify)")
    p.set_defaults(func=run)


def run(args) -> int:
    from crlkit.report.html import write_page

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ctx = DemoContext(out_dir=out, seed=args.seed, shared={})
    sections, failed = [], 0
    t_all = time.perf_counter()
    todo = [(t, m) for t, m in SECTIONS if not args.only or m.rsplit(".", 1)[-1] in args.only]
    for i, (title, mod_name) in enumerate(todo, 1):
        print(f"[{i}/{len(todo)}] {title}", flush=True)
        t0 = time.perf_counter()
        try:
            mod = importlib.import_module(mod_name)
            frag = mod.demo_section(ctx)
        except Exception:  # one broken section must not lose the rest of the page
            failed += 1
            frag = f'<pre class="err">{html.escape(traceback.format_exc())}</pre>'
            traceback.print_exc()
        secs = time.perf_counter() - t0
        print(f"      done in {secs:.1f} s", flush=True)
        sections.append({"title": title, "html": frag, "seconds": secs})
        write_page(out / "index.html", "crlkit demo", sections,
                   subtitle=f"seed {args.seed}; {i}/{len(todo)} sections")
    total = time.perf_counter() - t_all
    print(f"wrote {out / 'index.html'} in {total:.0f} s"
          + (f" ({failed} section(s) failed)" if failed else ""), flush=True)
    return 1 if failed else 0
