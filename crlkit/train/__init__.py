"""One trainer for everything that trains in crlkit.

- :mod:`crlkit.train.trainer`   the loop (:class:`Trainer`; ``train`` for a registered model
  on a registered dataset), run directories, loading (``load_model``);
- :mod:`crlkit.train.callbacks` what varies around the loop: the NaN guard, the CSV log,
  TensorBoard, progress, checkpoints; methods add schedules and data preparation.

>>> from crlkit.train import train, load_model
"""

from crlkit.train.callbacks import (Callback, Checkpoint, CSVLog, NaNGuard, Progress, TensorBoard, TrainingDiverged,
                                    read_checkpoint, save_checkpoint)
from crlkit.train.trainer import (TrainConfig, Trainer, check_run_dir, load_dataset, load_model, read_run_config,
                                  resolve_settings, train)

__all__ = ["Trainer", "TrainConfig", "TrainingDiverged", "train", "load_model", "load_dataset", "read_run_config",
           "resolve_settings", "check_run_dir", "Callback", "NaNGuard", "CSVLog", "TensorBoard", "Progress",
           "Checkpoint", "save_checkpoint", "read_checkpoint"]
