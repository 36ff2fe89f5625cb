"""``neuromap run``: the same network on torch, hwsim and Lava from the command line."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from neuromap.cli import main
from neuromap.ir import IF, LI, Affine, Input, Output, save_graph, sequential


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    rng = np.random.default_rng(0)
    graph = sequential([("in", Input((64,))), ("fc1", Affine(rng.normal(0, 0.4, (24, 64)), np.zeros(24))),
                        ("if1", IF((24,), threshold=1.0)), ("fc2", Affine(rng.normal(0, 0.4, (10, 24)), np.zeros(10))),
                        ("li", LI((10,))), ("out", Output((10,)))])
    return str(save_graph(graph, tmp_path_factory.mktemp("m") / "net.npz"))


def run(*args):
    result = CliRunner().invoke(main, ["run", *args])
    return result, (json.loads(result.output.strip().splitlines()[-1]) if result.exit_code == 0 else None)


def test_torch_and_hwsim_report_the_contract_keys(model, tmp_path):
    for backend in ("torch", "hwsim"):
        res, out = run(model, "--backend", backend, "--steps", "16", "--limit", "30", "--json")
        assert res.exit_code == 0, res.output
        assert set(out) == {"backend", "accuracy", "samples", "steps", "spikes_total", "seconds"}
        assert out["samples"] == 30 and out["steps"] == 16 and out["spikes_total"] > 0


@pytest.mark.lava
def test_lava_fixed_and_hwsim_spikes_are_identical(model, tmp_path):
    saved = {}
    for backend in ("hwsim", "lava"):
        path = tmp_path / f"{backend}.npz"
        res, out = run(model, "--backend", backend, "--steps", "12", "--limit", "4", "--save-spikes", str(path),
                       "--json")
        assert res.exit_code == 0, res.output
        with np.load(path) as f:
            saved[backend] = {k: f[k] for k in f.files}
    assert saved["hwsim"].keys() == saved["lava"].keys()
    for key in saved["hwsim"]:
        assert np.array_equal(saved["hwsim"][key], saved["lava"][key]), key
    assert saved["hwsim"]["if1"].sum() > 0


def test_bad_inputs_are_one_line_errors(model, tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    for args, message in [((str(junk),), "not a NIR file"),
                          ((str(tmp_path / "missing.npz"),), "no such file"),
                          ((model, "--data", "mnist5k"), "samples have shape (1, 28, 28)"),
                          ((model, "--data", "nope"), "unknown data set 'nope'")]:
        res, _ = run(*args)
        assert res.exit_code == 2 and message in res.output, res.output
        assert "Traceback" not in res.output
