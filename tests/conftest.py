"""Shared test settings: one torch thread per test process (pytest runs two processes on
the 2-core CI machine; small models run faster single-threaded there)."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)
