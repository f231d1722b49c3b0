"""Shortcut learning under distribution shift (cows and camels) and the methods that fix it.

>>> from crlkit.robust import ShortcutConfig, make_shortcut_data, run_method
>>> data = make_shortcut_data(ShortcutConfig(steps=1500), seed=0)
>>> run_method("groupdro", data, seed=0)["worst_group_accuracy"]
"""

from crlkit.robust.experiment import (RESULT_KEYS, ShortcutConfig, ShortcutData, evaluate, make_shortcut_data,
                                      run_method)
from crlkit.robust.measures import (accuracy_score, background_flip_rate, group_accuracies, mean_group_accuracy,
                                    worst_group_accuracy)
from crlkit.robust.methods import METHODS, RobustMethod, list_methods, make_method, register_method

__all__ = ["RESULT_KEYS", "ShortcutConfig", "ShortcutData", "evaluate", "make_shortcut_data", "run_method",
           "accuracy_score", "background_flip_rate", "group_accuracies", "mean_group_accuracy",
           "worst_group_accuracy", "METHODS", "RobustMethod", "list_methods", "make_method", "register_method"]
