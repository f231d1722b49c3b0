"""Latent causal models: DAGs, mechanisms, noise, interventions, segments, confounders.

>>> from crlkit.scm import LatentSCM
>>> scm = LatentSCM.random(5, graph="er", expected_degree=2, mechanism="linear", seed=0)
>>> z = scm.sample(1000, seed=1)
>>> z_do = scm.intervene({2: 1.5}).sample(1000, seed=1)   # same noise: only z2 and its descendants differ
"""

from crlkit.scm.graph import GRAPHS, ancestors, descendants, is_dag, random_dag, topological_order
from crlkit.scm.mechanisms import (MECHANISMS, LinearMechanism, Mechanism, MLPMechanism, ZeroMechanism, random_mlp,
                                   random_weights)
from crlkit.scm.marginals import FactorisedMarginals
from crlkit.scm.model import LatentSCM, SCMSample, SoftIntervention
from crlkit.scm.noise import NOISES, noise_cdf, noise_logpdf, noise_ppf, sample_noise

__all__ = ["LatentSCM", "FactorisedMarginals", "SCMSample", "SoftIntervention", "Mechanism", "LinearMechanism", "MLPMechanism",
           "ZeroMechanism", "random_dag", "topological_order", "is_dag", "descendants", "ancestors",
           "random_mlp", "random_weights", "sample_noise", "noise_logpdf", "noise_cdf", "noise_ppf",
           "GRAPHS", "MECHANISMS", "NOISES"]
