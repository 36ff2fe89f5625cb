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
    assert {the_block("sequential(["), the_block("neuromap.estimate(")} == set(blocks)


def test_the_readme_graph_example_runs(tmp_path, monkeypatch, capsys):
    printed = run_block(the_block("sequential(["), tmp_path, monkeypatch, capsys)
    assert (tmp_path / "out" / "net.npz").is_file()
    assert len(printed) == 2  # the float classes, then the quantized chip's


@pytest.mark.slow  # trains a small MLP on digits for 5 epochs, runs and estimates 100 samples on hwsim: ~8 s
def test_the_readme_example_goes_from_a_model_to_an_estimate(tmp_path, monkeypatch, capsys):
    summary, accuracy, energy, ratio = run_block(the_block("neuromap.estimate("), tmp_path, monkeypatch, capsys)
    fits = ast.literal_eval(summary)
    assert fits["target"] == "loihi2" and fits["cores"] >= 1 and fits["chips"] == 1
    assert fits["neurons"] == 100 + 10  # the default MLP's hidden layer and its read-out (inputs sit on no core)
    # far above chance (10 classes) after 5 epochs: the quantized chip classifies
    assert float(accuracy.rsplit(":", 1)[1]) > 0.5
    found = re.fullmatch(r"per inference: ([\d.]+) uJ, ([\d.]+) us on the chip", energy)
    assert found is not None and float(found[1]) > 0 and float(found[2]) > 0
    # the headline ratio names both sides (GPU profile, network, precision, batch; total energy each)
    what, value = ratio.rsplit(": ", 1)
    assert what.startswith("gpu h100 ") and what.endswith("total / chip total") and float(value) > 0


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


@pytest.mark.slow  # trains two small nets and runs both on Lava (2 samples each): ~30 s
@pytest.mark.lava
def test_make_demo_writes_its_summary_and_the_numbers_hold(tmp_path):
    """`make demo` is the README's first command; its --quick variant takes the same path in seconds."""
    import json

    from click.testing import CliRunner

    import neuromap
    from neuromap.cli import main
    from neuromap.data import load

    out = tmp_path / "demo"
    res = CliRunner().invoke(main, ["demo", "--quick", "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert json.loads(res.output.strip().splitlines()[-1]) == summary
    assert set(summary["networks"]) == {"stop_mlp", "rmp_cnn"}
    mnist = load("mnist5k")
    for name, net in summary["networks"].items():
        assert net["samples"] == {"float_snn": 20, "hwsim": 20, "lava_fixed_pt": 2}
        assert net["lava_equals_hwsim"] is True  # Lava fixed_pt, another engine, spikes as hwsim does
        assert net["resources"]["target"] == "loihi2" and net["resources"]["cores"] >= 1
        # the saved Mapping, run again on the samples the summary names, gives the summary's accuracy
        x, y = mnist.x_test[:20], mnist.y_test[:20]
        rerun = neuromap.run(neuromap.Mapping.load(net["files"]["mapping"]), x, net["steps"], backend="hwsim")
        assert 100 * (rerun.predictions() == y).mean() == pytest.approx(net["accuracy"]["hwsim"], abs=0.01), name
        energy = net["chip"]["energy_j"]
        assert energy["total"] == pytest.approx(energy["dynamic"] + energy["static"]) and energy["dynamic"] > 0
        assert [p["batch"] for p in net["gpu"]] and {p["batch"] for p in net["gpu"]} == {1}
        assert set(net["seconds"]) == {"train", "compile", "float_and_hwsim", "lava", "estimate"}
    assert summary["networks"]["stop_mlp"]["steps"] == 8 + 2  # STOP's T plus a step per projection
    # the report page of the converted CNN: self-contained, its figures inlined, and its own hwsim run of the same
    # samples agrees with the demo's
    page = (out / "report.html").read_text()
    assert summary["report"]["page"] == str(out / "report.html") and page.count("data:image/png;base64,") >= 5
    assert "http://" not in page and "https://" not in page
    assert summary["report"]["accuracy"]["hwsim"] == summary["networks"]["rmp_cnn"]["accuracy"]["hwsim"]
    assert summary["report"]["accuracy"]["ann"] == summary["networks"]["rmp_cnn"]["accuracy"]["trained"]
    assert "stop_mlp" in res.output and "rmp_cnn" in res.output  # the table
    assert callable(neuromap.demo)  # the API function, not hidden by the module the demo's logic lives in
