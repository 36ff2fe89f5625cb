"""docs/frameworks.md runs as written: each section's Python, given a small network of that framework, writes
the file its commands name; each command then runs through the CLI (exit 0). A section the doc gains
without a setup here fails, so the page cannot drift from what the code does."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import nir
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from datafiles import tonic_folder
from test_netx import dense_net, write_net
from test_nir_paper import PAPER_LAVA_AND_LOIHI2_SPIKES, braille_like, braille_rsnn, cnn_sinabs, lif_input, lif_norse

from neuromap.cli import main

DOC = Path(__file__).resolve().parents[1] / "docs" / "frameworks.md"


def sections() -> dict[str, tuple[list[str], list[str]]]:
    """Section title -> (its Python blocks, its command lines without comments)."""
    out = {}
    for part in re.split(r"^## ", DOC.read_text(encoding="utf-8"), flags=re.M)[1:]:
        title, body = part.split("\n", 1)
        python = re.findall(r"```python\n(.*?)```", body, flags=re.S)
        commands = [line.split("  #")[0].strip() for block in re.findall(r"```sh\n(.*?)```", body, flags=re.S)
                    for line in block.splitlines() if line.strip()]
        out[title.strip()] = (python, commands)
    return out


def sequences(path: Path, inputs: int, classes: int, steps: int = 16, samples: int = 4) -> None:
    rng = np.random.default_rng(5)
    np.savez(path, x=(rng.random((samples, steps, inputs)) < 0.3).astype(np.float32),
             y=np.arange(samples) % classes)


# ------------------------------------------------------------------- each section's network and data
def snntorch_mlp(tmp: Path) -> dict:
    import snntorch as snn

    def leaky(n, **kw):
        return snn.Leaky(beta=torch.full((n,), 0.9), threshold=torch.ones(n), init_hidden=True, **kw)

    torch.manual_seed(0)
    return {"net": torch.nn.Sequential(torch.nn.Linear(64, 32), leaky(32), torch.nn.Linear(32, 10),
                                       leaky(10, output=True))}


def snntorch_recurrent(tmp: Path) -> dict:
    import snntorch as snn

    torch.manual_seed(1)
    net = torch.nn.Sequential(
        torch.nn.Linear(12, 16, bias=False),
        snn.RLeaky(beta=torch.full((16,), 0.85), threshold=torch.ones(16), linear_features=16, init_hidden=True),
        torch.nn.Linear(16, 4, bias=False),
        snn.RSynaptic(alpha=torch.full((4,), 0.7), beta=torch.full((4,), 0.9), threshold=torch.ones(4),
                      linear_features=4, init_hidden=True, output=True))
    net[3].recurrent.bias.data.zero_()  # without bias axons, so the commands need no more than the IR's bias
    sequences(tmp / "seq.npz", 12, 4)
    return {"net": net}


def norse_mlp(tmp: Path) -> dict:
    import norse.torch as norse

    torch.manual_seed(2)
    sequences(tmp / "seq.npz", 8, 4)
    return {"model": norse.SequentialState(torch.nn.Linear(8, 12), norse.LIFBoxCell(), torch.nn.Linear(12, 4),
                                           norse.LIFBoxCell())}


def sinabs_cnn(tmp: Path) -> dict:
    import sinabs.layers as sl
    from sinabs.activation import SingleSpike

    batch = 2
    torch.manual_seed(3)

    def iaf():
        return sl.IAFSqueeze(batch_size=batch, spike_fn=SingleSpike)

    net = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3, padding=1, bias=False), iaf(), sl.SumPool2d(2),
                              torch.nn.Conv2d(4, 4, 3, bias=False), iaf(), torch.nn.Flatten(),
                              torch.nn.Linear(4 * 15 * 15, 3, bias=False), iaf())
    tonic_folder("nmnist", tmp / "data", np.random.default_rng(4))
    return {"net": net, "batch": batch}


def rockpool_mlp(tmp: Path) -> dict:
    from rockpool.nn.combinators import Sequential
    from rockpool.nn.modules import LIFTorch, LinearTorch

    torch.manual_seed(4)
    sequences(tmp / "seq.npz", 6, 3)
    return {"net": Sequential(LinearTorch((6, 8)), LIFTorch(8, max_spikes_per_dt=1.0), LinearTorch((8, 3)),
                              LIFTorch(3, max_spikes_per_dt=1.0))}


def spyx_file(tmp: Path) -> None:
    """What spyx/nir.py's to_nir writes (tau = dt/(1 - beta), r = beta, Linear layers); JAX is not here."""
    rng, beta, dt = np.random.default_rng(6), np.full(4, 0.8), 1.0
    nodes = {"input": nir.Input(np.array([6])), "layer_0": nir.Linear(rng.normal(size=(4, 6))),
             "layer_1": nir.LIF(tau=dt / (1 - beta), v_threshold=np.ones(4), v_leak=np.zeros(4), r=beta),
             "output": nir.Output(np.array([4]))}
    nir.write(tmp / "snn.nir", nir.NIRGraph(nodes=nodes, edges=[("input", "layer_0"), ("layer_0", "layer_1"),
                                                                  ("layer_1", "output")]))


def lava_dl_file(tmp: Path) -> None:
    write_net(tmp / "net.net", dense_net(np.random.default_rng(7)))
    sequences(tmp / "seq.npz", 12, 4)


def event_data(tmp: Path) -> None:
    """The Sinabs section's file (its Python, as written) and an N-MNIST folder."""
    run_python(sections()["Sinabs"][0], "Sinabs", sinabs_cnn(tmp))


def nir_paper_files(tmp: Path) -> None:
    nir.write(tmp / "lif_norse.nir", lif_norse())
    np.savez(tmp / "lif_input.npz", x=lif_input(), y=np.zeros(1, np.int64))
    nir.write(tmp / "cnn_sinabs.nir", cnn_sinabs(np.random.default_rng(0)))
    tonic_folder("nmnist", tmp / "data", np.random.default_rng(4))
    nir.write(tmp / "braille_noDelay_noBias_subtract.nir", braille_rsnn(np.random.default_rng(0)))
    np.savez(tmp / "braille.npz", x=braille_like(np.random.default_rng(1), 2, 32), y=np.zeros(2, np.int64))


# section -> (setup returning the names its Python uses, or None where that Python cannot run here)
SETUPS = {
    "snnTorch": (snntorch_mlp, None),
    "snnTorch, recurrent: RLeaky, RSynaptic": (snntorch_recurrent, None),
    "Norse": (norse_mlp, None),
    "Sinabs": (sinabs_cnn, None),
    "Rockpool": (rockpool_mlp, None),
    "Spyx": (None, spyx_file),              # JAX-only, not installed
    "lava-dl": (None, lava_dl_file),        # lava-dl not installed (its netx needs opencv, torchvision)
    "Event data: N-MNIST, DVS Gesture, SHD": (None, event_data),
    "The NIR paper's networks": (None, nir_paper_files),
}


def test_every_section_has_a_setup():
    assert set(sections()) == set(SETUPS)


def run_python(blocks: list[str], title: str, names: dict) -> None:
    assert len(blocks) == 1, title
    exec(compile(blocks[0], f"{DOC.name}: {title}", "exec"), names)


def cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.mark.parametrize("title", list(SETUPS))
def test_the_section_runs_as_written(title, tmp_path, monkeypatch):
    python, commands = sections()[title]
    names_for, make_files = SETUPS[title]
    monkeypatch.chdir(tmp_path)  # the page's relative file names
    if names_for is not None:
        run_python(python, title, names_for(tmp_path))
    else:
        make_files(tmp_path)
    assert commands, title
    for command in commands:
        argv = shlex.split(command)
        assert argv[0] == "neuromap", command
        result = cli(*argv[1:])
        assert result.exit_code == 0, f"{command}\n{result.output}"
    if title == "The NIR paper's networks":  # the steps the page states, from the command it gives
        assert np.flatnonzero(np.load("lif.npz")["1"]).tolist() == PAPER_LAVA_AND_LOIHI2_SPIKES
