"""``neuromap run``: the same network on torch, hwsim and Lava from the command line."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from neuromap.cli import main
from neuromap.ir import IF, LI, Affine, Conv2d, Flatten, Input, Output, save_graph, sequential


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    rng = np.random.default_rng(0)
    graph = sequential([("in", Input((64,))), ("fc1", Affine(rng.normal(0, 0.4, (24, 64)), np.zeros(24))),
                        ("if1", IF((24,), threshold=1.0)), ("fc2", Affine(rng.normal(0, 0.4, (10, 24)), np.zeros(10))),
                        ("li", LI((10,))), ("out", Output((10,)))])
    return str(save_graph(graph, tmp_path_factory.mktemp("m") / "net.npz"))


@pytest.fixture(scope="module")
def conv_model(tmp_path_factory):
    rng = np.random.default_rng(1)
    graph = sequential([("in", Input((1, 8, 8))), ("conv", Conv2d((1, 8, 8), rng.normal(0, 0.6, (3, 1, 3, 3)),
                                                                    np.zeros(3), padding=1, stride=2)),
                        ("if1", IF((3, 4, 4), threshold=1.0)), ("flat", Flatten((3, 4, 4))),
                        ("fc", Affine(rng.normal(0, 0.4, (10, 48)), np.zeros(10))), ("li", LI((10,))),
                        ("out", Output((10,)))])
    return str(save_graph(graph, tmp_path_factory.mktemp("c") / "conv.npz"))


def run(*args):
    result = CliRunner().invoke(main, ["run", *args])
    return result, (json.loads(result.output.strip().splitlines()[-1]) if result.exit_code == 0 else None)


def test_torch_and_hwsim_report_the_contract_keys(model, tmp_path):
    for backend in ("torch", "hwsim"):
        res, out = run(model, "--backend", backend, "--steps", "16", "--limit", "30", "--json")
        assert res.exit_code == 0, res.output
        assert set(out) == {"backend", "accuracy", "samples", "split", "steps", "spikes_total", "seconds"}
        assert out["samples"] == 30 and out["steps"] == 16 and out["spikes_total"] > 0
        assert out["split"] == "test" and "on 30 samples (test split of digits) x 16 steps" in res.output


@pytest.mark.lava
@pytest.mark.parametrize("which", ["model", "conv_model"])
def test_lava_fixed_and_hwsim_spikes_are_identical(which, request, tmp_path):
    model = request.getfixturevalue(which)
    saved = {}
    for backend in ("hwsim", "lava"):
        path = tmp_path / f"{backend}.npz"
        res, _out = run(model, "--backend", backend, "--steps", "12", "--limit", "4", "--save-spikes", str(path),
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


def test_snntorch_nir_file_needs_dt_reset_and_reset_timing_or_its_preset(tmp_path):
    import nir
    import snntorch as snn
    import torch
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(0)
    # per-neuron beta/threshold: snnTorch 1.0's export of scalars fails NIR 1.0.8's type check
    net = torch.nn.Sequential(torch.nn.Linear(64, 16), snn.Leaky(beta=torch.full((16,), 0.9), threshold=torch.ones(16),
                                                                 init_hidden=True),
                              torch.nn.Linear(16, 10), snn.Leaky(beta=torch.full((10,), 0.9), threshold=torch.ones(10),
                                                                 init_hidden=True, output=True))
    path = tmp_path / "snntorch.nir"
    nir.write(path, export_to_nir(net, torch.zeros(1, 64), ignore_dims=[0]))
    res, _ = run(str(path), "--limit", "5")
    assert res.exit_code == 2 and "--dt" in res.output and "Traceback" not in res.output
    res, _ = run(str(path), "--limit", "5", "--dt", "1.0")
    assert res.exit_code == 2 and "dt/tau" in res.output and "Traceback" not in res.output
    res, _ = run(str(path), "--limit", "5", "--dt", "1e-4")
    assert res.exit_code == 2 and "--reset subtract|zero" in res.output and "'1'" in res.output
    res, _ = run(str(path), "--limit", "5", "--dt", "1e-4", "--reset", "subtract")
    assert res.exit_code == 2 and "--reset-timing" in res.output
    res, out = run(str(path), "--limit", "5", "--dt", "1e-4", "--reset", "subtract", "--reset-timing", "next_step",
                   "--backend", "hwsim", "--json")
    assert res.exit_code == 0, res.output
    assert out["samples"] == 5
    res, preset_out = run(str(path), "--limit", "5", "--from", "snntorch", "--backend", "hwsim", "--json")
    assert res.exit_code == 0, res.output
    assert preset_out["accuracy"] == out["accuracy"]
