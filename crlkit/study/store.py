"""The results store of a study: ``DIR/study.sqlite`` (SQLite in WAL mode).

Written by the study's driver alone (trials report back through Ray), one transaction per
finished run, so a killed driver loses at most the runs in flight. Tables:

- ``runs``     one row per finished (``done``) or ``failed`` run: ``run_id`` (hash of the
               canonical config), ``model``, ``seed``, ``dataset``, ``steps``, ``status``,
               ``params`` (JSON) and one ``hp_<name>`` column per hyperparameter, ``metrics``
               (JSON) and one ``m_<name>`` column per metric, timings, ``attempts``,
               ``error``, ``crlkit_version``, ``git_commit``, ``host``, ``config`` (JSON),
               ``contract`` (JSON: the run's assumption contract check, see
               :func:`crlkit.contracts.enforce`) and ``mismatch`` (its first failed assumption,
               ``"requirement: reason"``; empty when the guarantee applies);
- ``codes``    per run, the posterior means and per-latent KL of the study's shared inputs
               (for UDR, a metric across runs);
- ``planned``  every run any invocation of the study asked for (its config);
- ``inflight`` runs a live driver has started and not yet recorded (status and time left).
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from pathlib import Path

import numpy as np

from crlkit.errors import CrlkitError

STORE_NAME = "study.sqlite"
#: columns added to ``runs`` after its first release: added to an older store when it is opened.
_ADDED_COLUMNS = {"contract": "TEXT", "mismatch": "TEXT"}
_IDENT = re.compile(r"^[A-Za-z0-9_]+$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, kind TEXT, model TEXT, seed INTEGER, dataset TEXT, steps INTEGER,
    status TEXT, params TEXT, metrics TEXT, config TEXT, started REAL, finished REAL,
    train_seconds REAL, eval_seconds REAL, attempts INTEGER, resumed_from INTEGER, error TEXT,
    crlkit_version TEXT, git_commit TEXT, host TEXT, contract TEXT, mismatch TEXT);
CREATE TABLE IF NOT EXISTS codes (run_id TEXT PRIMARY KEY, n INTEGER, d INTEGER, mean BLOB, kl BLOB);
CREATE TABLE IF NOT EXISTS planned (run_id TEXT PRIMARY KEY, config TEXT, added REAL);
CREATE TABLE IF NOT EXISTS inflight (run_id TEXT PRIMARY KEY, started REAL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
"""


def _column(prefix: str, name: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_]", "_", str(name))
    if not _IDENT.match(name):
        raise CrlkitError(f"cannot store a column named {name!r}")
    return f"{prefix}{name}"


class Store:
    """The SQLite store of one study directory (created when missing)."""

    def __init__(self, directory: str | Path, *, create: bool = True):
        self.dir = Path(directory)
        self.path = self.dir / STORE_NAME
        if not create and not self.path.exists():
            raise CrlkitError(f"no study in {self.dir} (missing {STORE_NAME})")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        """Add the columns a store written by an older crlkit lacks (its rows keep NULL there)."""
        missing = [c for c in _ADDED_COLUMNS if c not in self.columns()]
        if missing:
            with self._tx():
                have = set(self.columns())  # another driver may have added them meanwhile
                for col in missing:
                    if col not in have:
                        self.db.execute(f'ALTER TABLE runs ADD COLUMN "{col}" {_ADDED_COLUMNS[col]}')

    def close(self) -> None:
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- reads ----------------------------------------------------------------------
    def columns(self) -> list[str]:
        return [r[1] for r in self.db.execute("PRAGMA table_info(runs)")]

    def status_of(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT run_id, status FROM runs"))

    def done_ids(self) -> set[str]:
        return {r for r, s in self.status_of().items() if s == "done"}

    def planned(self) -> dict[str, dict]:
        return {r: json.loads(c) for r, c in self.db.execute("SELECT run_id, config FROM planned")}

    def current(self) -> dict[str, dict]:
        """The runs of the latest grid asked for (``planned`` also keeps earlier grids' runs)."""
        planned = self.planned()
        ids = json.loads(self.meta().get("current_runs", "null"))
        return planned if ids is None else {r: planned[r] for r in ids if r in planned}

    def inflight(self) -> dict[str, float]:
        return dict(self.db.execute("SELECT run_id, started FROM inflight"))

    def rows(self) -> list[dict]:
        cur = self.db.execute("SELECT * FROM runs ORDER BY model, params, seed")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]

    def codes(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        out = {}
        for run_id, n, d, mean, kl in self.db.execute("SELECT run_id, n, d, mean, kl FROM codes"):
            out[run_id] = (np.frombuffer(mean, dtype=np.float32).reshape(n, d),
                           np.frombuffer(kl, dtype=np.float32).reshape(d))
        return out

    def meta(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT key, value FROM meta"))

    # ---- writes (the driver's) ------------------------------------------------------
    def set_meta(self, **items) -> None:
        with self._tx():
            for k, v in items.items():
                self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (k, json.dumps(v)))

    def plan(self, runs) -> int:
        """Record the runs a study asks for; returns how many were new."""
        now = time.time()
        with self._tx():
            before = self.db.total_changes
            self.db.executemany("INSERT OR IGNORE INTO planned VALUES (?, ?, ?)",
                                [(r.run_id, json.dumps(r.config, sort_keys=True), now) for r in runs])
            return self.db.total_changes - before

    def mark_started(self, run_id: str) -> None:
        with self._tx():
            self.db.execute("INSERT OR REPLACE INTO inflight VALUES (?, ?)", (run_id, time.time()))

    def clear_inflight(self) -> None:
        with self._tx():
            self.db.execute("DELETE FROM inflight")

    def record(self, run_id: str, config: dict, result: dict, *, status: str, error: str | None = None,
               attempts: int = 1, version: str = "", commit: str | None = None,
               contract: dict | None = None) -> None:
        """Write one finished run (and its codes), in one transaction. ``contract``: the run's
        contract check (default: the one in ``result``, as the trainer returns it)."""
        from crlkit.study.grid import mismatch_text

        contract = result.get("contract") or contract
        params = config.get("params", {})
        metrics = {k: float(v) for k, v in (result.get("metrics") or {}).items()}
        row = {
            "run_id": run_id, "kind": config.get("kind"), "model": config["model"], "seed": int(config["seed"]),
            "dataset": config.get("dataset"), "steps": result.get("steps", config.get("steps")), "status": status,
            "params": json.dumps(params, sort_keys=True), "metrics": json.dumps(metrics, sort_keys=True),
            "config": json.dumps(config, sort_keys=True), "started": result.get("started"),
            "finished": time.time(), "train_seconds": result.get("train_seconds"),
            "eval_seconds": result.get("eval_seconds"), "attempts": int(attempts),
            "resumed_from": result.get("resumed_from"), "error": error, "crlkit_version": version,
            "git_commit": commit, "host": result.get("host"),
            "contract": None if contract is None else json.dumps(contract, sort_keys=True, default=str),
            "mismatch": None if contract is None else mismatch_text(contract),
        }
        for k, v in params.items():
            row[_column("hp_", k)] = v if isinstance(v, (int, float, str)) or v is None else json.dumps(v)
        for k, v in metrics.items():
            row[_column("m_", k)] = v
        with self._tx():
            have = set(self.columns())
            for col, v in row.items():
                if col not in have:
                    sqltype = "REAL" if isinstance(v, float) else "INTEGER" if isinstance(v, int) else "TEXT"
                    self.db.execute(f'ALTER TABLE runs ADD COLUMN "{col}" {sqltype}')
            cols = list(row)
            self.db.execute(f"INSERT OR REPLACE INTO runs ({', '.join(chr(34) + c + chr(34) for c in cols)}) "
                            f"VALUES ({', '.join('?' * len(cols))})", [row[c] for c in cols])
            codes = result.get("codes")
            if codes is not None:
                mean = np.asarray(codes["mean"], dtype=np.float32)
                kl = np.asarray(codes["kl"], dtype=np.float32)
                self.db.execute("INSERT OR REPLACE INTO codes VALUES (?, ?, ?, ?, ?)",
                                (run_id, mean.shape[0], mean.shape[1], mean.tobytes(), kl.tobytes()))
            self.db.execute("DELETE FROM inflight WHERE run_id = ?", (run_id,))

    def _tx(self):
        return _Transaction(self.db)


class _Transaction:
    def __init__(self, db):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type, *exc):
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
        return False
