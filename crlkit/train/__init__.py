"""One trainer for everything that trains in crlkit.

- :mod:`crlkit.train.trainer`   the loop (``train``), run directories, loading (``load_model``);
- :mod:`crlkit.train.callbacks` what varies around the loop: logging, checkpoints, the NaN
  guard, schedules, data preparation, evaluation, progress.

>>> from crlkit.train import train, load_model
"""

from crlkit.train.grouped import train_many
from crlkit.train.trainer import (TrainConfig, TrainingDiverged, load_dataset, load_model, read_run_config,
                                  resolve_settings, train)

__all__ = ["TrainConfig", "TrainingDiverged", "train", "load_model", "load_dataset", "read_run_config",
           "resolve_settings", "train_many"]
