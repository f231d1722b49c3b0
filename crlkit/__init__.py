"""crlkit: causal representation learning toolkit.

Latent causal models and mixing functions (``crlkit.scm``, ``crlkit.mixing``), procedural
ground-truth datasets (``crlkit.data``), disentanglement and identifiable models
(``crlkit.models``), one trainer (``crlkit.train``), metrics (``crlkit.metrics``) and
shortcut-learning robustness methods (``crlkit.robust``).
"""

from crlkit.errors import CrlkitError

__version__ = "0.1.0"
__all__ = ["CrlkitError", "__version__", "load", "train_many"]


def load(path, *, device="cpu"):
    """Load a model trained by ``crlkit train`` from its output directory.

    Returns the ``torch.nn.Module`` with ``encode(x)``, in eval mode.
    """
    from crlkit.train import load_model

    return load_model(path, device=device)


def train_many(*args, **kwargs):
    """Train several models of one method as one stacked group: :func:`crlkit.train.grouped.train_many`."""
    from crlkit.train.grouped import train_many as _train_many

    return _train_many(*args, **kwargs)
