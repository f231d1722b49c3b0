"""Reference values and timings from the independent implementation disent 0.8.0.

Run with the interpreter of a separate venv that has disent (see bench/RESULTS_metrics.md):

    /tmp/disent-venv/bin/python bench/disent_reference.py IN.npz OUT.json [metric ...]

IN.npz holds arrays ``<name>__codes``, ``<name>__factors``, ``<name>__codes_test``,
``<name>__factors_test`` for each named representation. Writes, per representation and
metric, disent's value and the seconds it took. disent's import pulls in torchvision, whose
compiled ops need a matching CUDA/CPU torch build; the metric code never uses it, so it is
stubbed out here.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import json
import sys
import time
import types

import numpy as np


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answer every ``torchvision*`` / ``lightning*`` import with an empty module whose
    attributes are placeholders (disent imports them at module level only)."""

    PREFIXES = ("torchvision", "lightning")

    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in self.PREFIXES:
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        mod = types.ModuleType(spec.name)
        mod.__path__ = []
        mod.__getattr__ = lambda attr: type(attr, (), {})  # placeholder classes/functions
        return mod

    def exec_module(self, module):
        pass


def main(argv):
    src, out = argv[0], argv[1]
    metrics = argv[2:] or ["mig", "sap", "dci"]
    sys.meta_path.insert(0, _StubFinder())
    from disent.metrics import _dci, _mig, _sap

    data = np.load(src)
    names = sorted({k.split("__")[0] for k in data.files})
    result = {}
    for name in names:
        c, f = data[f"{name}__codes"], data[f"{name}__factors"]
        ct, ft = data[f"{name}__codes_test"], data[f"{name}__factors_test"]
        res = {}
        # disent (like disentanglement_lib) takes arrays as (n_dims, n_samples)
        # seconds: wall clock; cpu_seconds: this process's CPU time (robust to a busy machine)
        if "mig" in metrics:
            t, u = time.perf_counter(), time.process_time()
            r = _mig._compute_mig(c.T, f.T)
            res["mig"] = {"value": float(r["mig.discrete_score"]), "seconds": time.perf_counter() - t,
                          "cpu_seconds": time.process_time() - u}
        if "sap" in metrics:
            t, u = time.perf_counter(), time.process_time()
            r = _sap._compute_sap(c.T, f.T, ct.T, ft.T, continuous_factors=False)
            res["sap"] = {"value": float(r["sap.score"]), "seconds": time.perf_counter() - t,
                          "cpu_seconds": time.process_time() - u}
        if "dci" in metrics:
            # disent's _compute_dci, one factor at a time so that progress can be printed:
            # the same GradientBoostingClassifier per factor, the same D / C formulas
            t, u = time.perf_counter(), time.process_time()
            cols, tr_acc, te_acc = [], [], []
            for j in range(f.shape[1]):
                imp, tr, te = _dci._compute_importance_gbt(c.T, f.T[j:j + 1], ct.T, ft.T[j:j + 1])
                cols.append(imp[:, 0])
                tr_acc.append(tr)
                te_acc.append(te)
                print(f"  disent DCI factor {j}: {time.process_time() - u:.1f} CPU s so far", flush=True)
            imp = np.stack(cols, axis=1)
            r = {"dci.disentanglement": _dci._disentanglement(imp), "dci.completeness": _dci._completeness(imp),
                 "dci.informativeness_test": np.mean(te_acc), "dci.informativeness_train": np.mean(tr_acc)}
            secs, cpu = time.perf_counter() - t, time.process_time() - u
            for k in ("disentanglement", "completeness", "informativeness_test", "informativeness_train"):
                res[f"dci_{k}"] = {"value": float(r[f"dci.{k}"]), "seconds": secs, "cpu_seconds": cpu}
        result[name] = res
        print(name, {k: round(v["value"], 4) for k, v in res.items()}, flush=True)
    with open(out + ".tmp", "w") as fh:
        json.dump(result, fh, indent=1)
    import os

    os.replace(out + ".tmp", out)


if __name__ == "__main__":
    main(sys.argv[1:])
