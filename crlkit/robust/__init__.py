"""Shortcut learning under distribution shift (cows and camels), the methods that fix it, and
honest model selection among their candidates.

>>> from crlkit.robust import ShortcutConfig, make_shortcut_data, run_search
>>> data = make_shortcut_data(ShortcutConfig(steps=1500), seed=0)
>>> run_search("groupdro", data, seed=0, rules="all")["worst_group"]["worst_group_accuracy"]
"""

from crlkit.robust.experiment import (DATA_FIELDS, RESULT_KEYS, TRAIN_FIELDS, ShortcutConfig, ShortcutData,
                                      TestSplitSealed, evaluate, make_shortcut_data)
from crlkit.robust.measures import (accuracy_score, background_flip_rate, group_accuracies, mean_group_accuracy,
                                    worst_class_accuracy, worst_group_accuracy)
from crlkit.robust.methods import METHODS, Candidate, RobustMethod, list_methods, make_method, register_method
from crlkit.robust.selection import RULES, SELECTION_LABELS, check_rules, run_method, run_search, select

__all__ = ["DATA_FIELDS", "RESULT_KEYS", "TRAIN_FIELDS", "ShortcutConfig", "ShortcutData", "TestSplitSealed",
           "evaluate", "make_shortcut_data", "accuracy_score", "background_flip_rate", "group_accuracies",
           "mean_group_accuracy", "worst_class_accuracy", "worst_group_accuracy", "METHODS", "Candidate",
           "RobustMethod", "list_methods", "make_method", "register_method", "RULES", "SELECTION_LABELS",
           "check_rules", "run_method", "run_search", "select"]
