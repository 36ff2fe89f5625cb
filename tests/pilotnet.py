"""Intel's trained PilotNet LIF as vendored in tests/data/lava_dl/pilotnet_lif (README.md there): the graph
read_netx gives, driven by a bias frame or not, and Lava's ground truth summary."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path

import numpy as np

from neuromap.ir import Graph
from neuromap.ir.netx_io import read_netx

DATA = Path(__file__).parent / "data" / "lava_dl" / "pilotnet_lif"
NETWORK = DATA / "network.net"


def readme_sha256() -> dict[str, str]:
    """The sha256 the data README gives per vendored file."""
    rows = re.findall(r"^\| `([^`]+)` \|.*\| ([0-9a-f]{64}) \|$", (DATA / "README.md").read_text(), re.M)
    return dict(rows)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def ground_truth() -> dict:
    return json.loads((DATA / "ground_truth.json").read_text())


def ground_truth_spikes(population: str) -> np.ndarray:
    """Lava's spikes of a driving layer, (T, *shape) bools in torch order (ground_truth.npz)."""
    shape = ground_truth()["shape"][population]
    packed = np.load(DATA / "ground_truth.npz")[population]
    n = int(np.prod(shape))
    return np.unpackbits(packed, axis=1, count=n).astype(bool).reshape(len(packed), *shape)


def frame_chw() -> np.ndarray:
    """lava-dl's frame, image.npy (x, y, c) int32, as a (C, H, W) bias."""
    return np.load(DATA / "image.npy").transpose(2, 1, 0).astype(np.float64)


def pilotnet(bias: np.ndarray | None = None) -> Graph:
    """read_netx of the vendored network.net; with ``bias``, the input layer's neurons (``layer0``) carry it
    as their bias_mant, as Lava's ``net.in_layer.neuron.bias_mant`` (lava-dl test_hdf5_nx.py:103-104)."""
    graph = read_netx(NETWORK)
    if bias is None:
        return graph
    return graph.with_nodes({"layer0": dataclasses.replace(graph.nodes["layer0"], bias=bias)})
