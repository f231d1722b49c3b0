"""`crlkit demo`'s command line: parse and print only; bad input is one line and exit 2."""

from __future__ import annotations

from crlkit.cli import main


def test_unknown_section_is_one_line_exit_2(tmp_path, capsys):
    assert main(["demo", "--only", "bogus", "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bogus" in err[0] and "fail" in err[0] and "crl" in err[0]


def test_help_ends_with_examples(capsys):
    assert main(["demo", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--quick" in out and "--study" in out and "--screenshots" in out
    assert out.rstrip().splitlines()[-1].strip().startswith("crlkit demo")


def test_one_section_builds_a_page(tmp_path, capsys):
    """The cheapest section alone: the page has it, with its why, and nothing else."""
    assert main(["demo", "--only", "causal", "--out", str(tmp_path)]) == 0
    page = (tmp_path / "index.html").read_text()
    assert 'id="causal"' in page and 'class="why"' in page and 'id="fail"' not in page
    assert (tmp_path / "causal" / "cows_camels_graph.png").stat().st_size > 1000
    assert "[1/1] 2. The causal view" in capsys.readouterr().out
