"""Learning a latent causal graph from recovered variables (causal-learn underneath).

- :mod:`crlkit.graph.pairs`: from the codes of counterfactual pairs (the noise encoding that
  ``crlkit.models.interventional`` learns) to causal variables, their order and the DAG.

>>> from crlkit.graph import causal_variables, learn_graph
"""

from crlkit.graph.pairs import (GRAPH_SEARCHES, INDEP_TESTS, causal_order, causal_variables, fit_parents_contribution,
                                learn_graph, ordered_dependence, ordered_partial_correlation, unmix_from_changes)

__all__ = ["GRAPH_SEARCHES", "INDEP_TESTS", "causal_variables", "learn_graph", "unmix_from_changes",
           "fit_parents_contribution", "ordered_partial_correlation", "ordered_dependence", "causal_order"]
