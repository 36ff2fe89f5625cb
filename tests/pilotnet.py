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


# Intel's activity profile (benchmark.ipynb cell 27, matplotlib's default colours, in the figure's legend order)
PROFILE_COLOURS = {"syn_ops": (31, 119, 180), "dendrite_updates": (255, 127, 14), "axon_out": (44, 160, 44),
                   "spikes_in": (214, 39, 40)}


def read_profile(png: Path = DATA / "benchmark_activity.png") -> dict[str, list[float | None]]:
    """Each curve's value per core index 0..73 (counts), read off the stored figure: the axes from their tick
    marks (y: 0 ... 1.4e9 in steps of 0.2e9, x: 0 ... 70 in steps of 10), a curve's value at a core the mean
    row of its colour's pixels within one column of it (None where another curve covers it)."""
    from PIL import Image

    rgb = np.asarray(Image.open(png).convert("RGB")).astype(int)
    dark = rgb.sum(axis=2) < 200
    spine_x = int(np.argmax(dark.sum(axis=0)[:300]))
    spine_y = 200 + int(np.argmax(dark.sum(axis=1)[200:]))
    y_ticks = [y for y in range(rgb.shape[0]) if dark[y, spine_x - 4:spine_x - 1].all()]
    x_ticks = [x for x in range(rgb.shape[1]) if dark[spine_y + 2:spine_y + 5, x].all()]
    if len(y_ticks) != 8 or len(x_ticks) != 8:
        raise ValueError(f"{png}: expected 8 tick marks on each axis, found {len(y_ticks)} and {len(x_ticks)}")
    per_count = (y_ticks[-1] - y_ticks[0]) / 1.4e9          # px per count
    per_core = (x_ticks[-1] - x_ticks[0]) / 70
    out: dict[str, list[float | None]] = {}
    for name, colour in PROFILE_COLOURS.items():
        mask = np.abs(rgb - np.array(colour)).sum(axis=2) < 60
        values: list[float | None] = []
        for core in range(74):
            x = round(x_ticks[0] + core * per_core)
            rows = np.nonzero(mask[:, x - 1:x + 2].any(axis=1))[0]
            values.append(None if rows.size == 0 else float((y_ticks[-1] - rows.mean()) / per_count))
        out[name] = values
    return out
