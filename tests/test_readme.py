"""The README's Python examples run as written (the user's first contact with the API)."""
from __future__ import annotations

import ast
import re
import runpy
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def run_block(block: str, tmp_path: Path, monkeypatch, capsys) -> list[str]:
    """Run one block as a script in ``tmp_path``; its printed lines."""
    script = tmp_path / "example.py"
    script.write_text(block, encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # the examples write under out/
    runpy.run_path(str(script), run_name="__main__")
    return capsys.readouterr().out.splitlines()


def the_block(marker: str) -> str:
    (block,) = [b for b in python_blocks() if marker in b]
    return block


def test_every_python_block_of_the_readme_is_run_here():
    blocks = python_blocks()
    assert len(blocks) == 2
    assert {the_block("sequential(["), the_block("estimate_chip(")} == set(blocks)


def test_the_readme_graph_example_runs(tmp_path, monkeypatch, capsys):
    printed = run_block(the_block("sequential(["), tmp_path, monkeypatch, capsys)
    assert (tmp_path / "out" / "net.npz").is_file()
    assert len(printed) == 2  # the float classes, then the quantized chip's


@pytest.mark.slow  # trains a small MLP on digits for 5 epochs and runs 100 samples on hwsim: ~7 s
def test_the_readme_example_goes_from_a_model_to_an_estimate(tmp_path, monkeypatch, capsys):
    summary, accuracy, energy = run_block(the_block("estimate_chip("), tmp_path, monkeypatch, capsys)
    fits = ast.literal_eval(summary)
    assert fits["target"] == "loihi2" and fits["cores"] >= 1 and fits["chips"] == 1
    assert fits["neurons"] == 100 + 10  # the default MLP's hidden layer and its read-out (inputs sit on no core)
    # far above chance (10 classes) after 5 epochs: the quantized chip classifies
    assert float(accuracy.rsplit(":", 1)[1]) > 0.5
    found = re.fullmatch(r"per inference: ([\d.]+) uJ, ([\d.]+) us", energy)
    assert found is not None and float(found[1]) > 0 and float(found[2]) > 0


def test_the_readme_sweep_spec_is_a_valid_spec_of_six_points(tmp_path):
    """The README's sweep spec (its one TOML block) loads with every key known: 2 targets x 3 T."""
    from neuromap.sweeps import load_spec

    (block,) = re.findall(r"```toml\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    spec_file = tmp_path / "sweep.toml"
    spec_file.write_text(block, encoding="utf-8")
    spec = load_spec(spec_file)
    assert len(spec.points) == 6
    assert {(p["target"], p["steps"]) for p in spec.points} == {(t, s) for t in ("loihi1", "loihi2")
                                                                for s in (8, 16, 32)}
