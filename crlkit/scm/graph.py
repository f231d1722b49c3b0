"""DAG utilities: random graphs, topological order, ancestors and descendants.

Convention everywhere in crlkit: ``A[i, j] != 0`` iff ``z_i -> z_j``.
"""

from __future__ import annotations

import heapq

import numpy as np

from crlkit.errors import CrlkitError
from crlkit.registry import unknown_choice
from crlkit.seeding import as_generator

GRAPHS = ("er", "chain", "full", "empty")


def check_adjacency(adjacency) -> np.ndarray:
    """A float copy of a square adjacency matrix with an empty diagonal (else CrlkitError)."""
    a = np.array(adjacency, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise CrlkitError(f"adjacency must be a square (d, d) matrix; got shape {a.shape}")
    if np.any(np.diag(a) != 0):
        raise CrlkitError("adjacency must have an empty diagonal (no self-loops)")
    return a


def topological_order(adjacency) -> list[int]:
    """Kahn's algorithm, smallest index first among ready nodes (so a graph already in
    causal order returns ``0..d-1``). Raises CrlkitError naming a node on a cycle."""
    a = np.asarray(adjacency) != 0
    d = len(a)
    indeg = a.sum(axis=0).astype(int)
    ready = [j for j in range(d) if indeg[j] == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for j in np.flatnonzero(a[i]):
            indeg[j] -= 1
            if indeg[j] == 0:
                heapq.heappush(ready, int(j))
    if len(order) < d:
        stuck = sorted(set(range(d)) - set(order))
        raise CrlkitError(f"adjacency has a cycle through nodes {stuck}; a latent causal model must be a DAG")
    return order


def is_dag(adjacency) -> bool:
    try:
        topological_order(adjacency)
    except CrlkitError:
        return False
    return True


def descendants(adjacency, i: int) -> set[int]:
    """Nodes reachable from ``i`` by directed paths (excluding ``i``)."""
    a = np.asarray(adjacency) != 0
    seen, stack = set(), [i]
    while stack:
        for j in np.flatnonzero(a[stack.pop()]):
            if int(j) not in seen:
                seen.add(int(j))
                stack.append(int(j))
    seen.discard(i)
    return seen


def ancestors(adjacency, i: int) -> set[int]:
    """Nodes with a directed path into ``i`` (excluding ``i``)."""
    return descendants(np.asarray(adjacency).T, i)


def random_dag(d: int, graph: str = "er", *, expected_degree: float = 2.0,
               rng: np.random.Generator | int = 0) -> np.ndarray:
    """Binary adjacency (float 0/1) of a random DAG in causal order ``0 -> … -> d-1``.

    ``"er"``: Erdős–Rényi, each forward pair ``i < j`` an edge with probability
    ``p = expected_degree / (d - 1)`` (so a node has ``expected_degree`` neighbours, in plus
    out, on average); ``"chain"``: ``i -> i+1``; ``"full"``: every ``i < j``; ``"empty"``: none.
    """
    if graph not in GRAPHS:
        raise CrlkitError(unknown_choice("graph", graph, GRAPHS))
    if d < 1:
        raise CrlkitError(f"number of latents must be >= 1; got {d}")
    rng = as_generator(rng)
    upper = np.triu(np.ones((d, d)), k=1)
    if graph == "empty":
        return np.zeros((d, d))
    if graph == "full":
        return upper
    if graph == "chain":
        return np.eye(d, k=1)
    if not 0 <= expected_degree:
        raise CrlkitError(f"expected_degree must be >= 0; got {expected_degree}")
    p = min(1.0, expected_degree / max(d - 1, 1))
    return upper * (rng.random((d, d)) < p)
