"""`dressvision demo` tells the story it promises (the fast path, without training)."""

from __future__ import annotations

import pytest

from local.cli import main


def test_demo_imports_twice_and_shows_the_store(tmp_path, capsys):
    argv = ["--home", str(tmp_path), "demo", "--products", "6", "--skip-training"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "imported" in out and "0 imported, 0 updated" in out  # the second import
    assert "products per split" in out and "neckline" in out


@pytest.mark.slow
def test_demo_prints_the_relabel_rounds(tmp_path, capsys):
    argv = ["--home", str(tmp_path), "demo", "--products", "12", "--epochs", "1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "7. Rounds" in out and "round 1 (model " in out
    assert "labels changed" in out and "wrong labels left" in out
    assert "label errors against the true labels" in out
