"""Dataset pages: one page per dataset with its figures, linked from the demo's gallery."""

from __future__ import annotations

import numpy as np

from crlkit.data import make_dataset
from crlkit.report.browser import broken_links
from crlkit.report.datasets import traversal_factors, write_dataset_page


def test_image_dataset_page_has_samples_traversals_and_graph(tmp_path):
    ds = make_dataset("pendulum")
    written = write_dataset_page(ds, tmp_path / "pendulum", n=4, steps=3, home="../index.html")
    for key in ("samples", "traversals", "graph", "info", "page"):
        assert written[key].is_file() and written[key].stat().st_size > 100
    page = written["page"].read_text()
    for key in ("samples.png", "traversals.png", "graph.png", "info.json"):
        assert f'src="{key}"' in page or f'href="{key}"' in page
    assert "shadow_position" in page and "pendulum_angle, light_angle" in page  # parents listed
    (tmp_path / "index.html").write_text("<p>home</p>")
    assert broken_links(written["page"], ["samples.png", "info.json", "../index.html"]) == []


def test_vector_dataset_page(tmp_path):
    ds = make_dataset("synthetic", latents=3, graph="chain", seed=0)
    written = write_dataset_page(ds, tmp_path / "syn", n=50, steps=4)
    assert {"samples", "traversals", "graph", "page"} <= set(written)


def test_traversal_by_intervention_moves_descendants_only():
    """pendulum: varying the light angle moves the shadow, never the pendulum."""
    ds = make_dataset("pendulum")
    base = ds.sample_factors(1, np.random.default_rng(0))[0]
    rows = dict(traversal_factors(ds, base, 5))
    light = rows["light_angle"]
    assert len(np.unique(light[:, 1])) == 5
    assert np.all(light[:, 0] == base[0])                 # the pendulum stays
    assert len(np.unique(light[:, 3])) > 1                # its shadow follows the light
    shadow = rows["shadow_position"]
    assert np.all(shadow[:, :2] == base[:2])              # the causes do not follow their effect
