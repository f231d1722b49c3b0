"""DCI speed: crlkit vs disent 0.8.0 (scikit-learn GradientBoostingClassifier per factor) on the
same arrays: 1,000 train / 1,000 test samples of the five dSprites factors, 10 latents.

    .venv/bin/python bench/bench_dci.py [--reps mixed disentangled] [--bins 32 64] [--numpy]

Runs crlkit (exact thresholds with the default backend -- numba when installed --, and each
--bins setting; --numpy also times the NumPy engine) and disent back to back per
representation, so both see the same machine load, and prints the speed-up. The numba kernel
is compiled once and cached on disk (cache=True); a first run ever includes the compile.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

from bench_metrics import arrays_for, disent_scores  # noqa: E402


def main() -> int:
    import torch

    from crlkit.metrics import dci_scores

    torch.set_num_threads(1)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", nargs="+", default=["mixed", "disentangled"])
    ap.add_argument("--bins", nargs="*", type=int, default=[64])
    ap.add_argument("--threads", action="store_true", help="also time exact DCI with 2 threads")
    ap.add_argument("--numpy", action="store_true", help="also time the exact NumPy engine (backend='numpy')")
    ap.add_argument("--n-train", type=int, default=1000)
    ap.add_argument("--n-test", type=int, default=1000)
    args = ap.parse_args()
    for name in args.reps:
        arrays = arrays_for([name], args.n_train, args.n_test)
        a = [arrays[f"{name}__{k}"] for k in ("codes", "factors", "codes_test", "factors_test")]
        rows = []
        runs = [(None, 1, "auto"), *([(None, 2, "auto")] if args.threads else []),
                *([(None, 1, "numpy")] if args.numpy else []), *[(b, 1, "auto") for b in args.bins]]
        for bins, jobs, backend in runs:
            t, u = time.perf_counter(), time.process_time()
            r = dci_scores(*a, max_bins=bins, n_jobs=jobs, backend=backend)
            label = (f"crlkit {'exact' if bins is None else f'{bins} bins'}" + (f", {jobs} threads" if jobs > 1 else "")
                     + (", numpy" if backend == "numpy" else ""))
            rows.append((label, r, time.perf_counter() - t, time.process_time() - u))
        ref = disent_scores(arrays, ["dci"])
        if ref:
            d = ref[name]
            rows.append(("disent 0.8.0 (sklearn)", {"disentanglement": d["dci_disentanglement"]["value"],
                                                   "completeness": d["dci_completeness"]["value"],
                                                   "informativeness": d["dci_informativeness_test"]["value"]},
                         d["dci_disentanglement"]["seconds"], d["dci_disentanglement"]["cpu_seconds"]))
        print(f"\n{name}: {args.n_train} / {args.n_test} samples (wall s / CPU s; speed-up by each)")
        print(f"{'implementation':<30} {'D':>7} {'C':>7} {'I':>7} {'wall s':>8} {'cpu s':>8} {'x wall':>7} {'x cpu':>7}")
        ref_w, ref_c = (rows[-1][2], rows[-1][3]) if ref else (None, None)
        for label, r, secs, cpu in rows:
            up = f"{ref_w / secs:7.1f} {ref_c / cpu:7.1f}" if ref else ""
            print(f"{label:<30} {r['disentanglement']:7.4f} {r['completeness']:7.4f} {r['informativeness']:7.4f} "
                  f"{secs:8.2f} {cpu:8.2f} {up}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
