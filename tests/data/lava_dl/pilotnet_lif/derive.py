"""Derive ground_truth.json and ground_truth.npz from lava-dl's PilotNet LIF ground truth (README.md).

Run: python derive.py DIR, DIR holding lava-dl d825ac5 tests/lava/lib/dl/netx/gts/pilotnet_lif/*.npy.
Lava's arrays are (x, y, c, T) or (n, T); everything here is per step t in torch's (C, H, W) / (n,) order,
C-contiguous: spike counts, the sha256 of each step's spikes (np.packbits of the bools) and of each step's
current u (int32), and the spikes themselves, bit-packed, of the layers that drive another layer.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

# Lava's file name per neuromap population of read_netx (layer6 is the flatten); fc-3 is left out: its
# 25-step files do not follow from fc-2.npy (README.md)
LAYERS = {"layer0": "input", "layer1": "conv-0", "layer2": "conv-1", "layer3": "conv-2", "layer4": "conv-3",
          "layer5": "conv-4", "layer7": "fc-0", "layer8": "fc-1", "layer9": "fc-2"}
DRIVERS = ("conv-0", "conv-1", "conv-2", "conv-3", "conv-4", "fc-0", "fc-1")   # upstream of a layer with u


def torch_order(a: np.ndarray) -> np.ndarray:
    """(x, y, c, T) -> (T, C, H, W); (n, T) -> (T, n)."""
    a = np.moveaxis(a, -1, 0)
    return np.ascontiguousarray(a.transpose(0, 3, 2, 1) if a.ndim == 4 else a)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def main(src: Path) -> None:
    here = Path(__file__).parent
    files = [f"{name}.npy" for name in LAYERS.values()] + [f"{name}-u.npy" for name in list(LAYERS.values())[2:]]
    summary: dict = {"source": "lava-nc/lava-dl d825ac5 tests/lava/lib/dl/netx/gts/pilotnet_lif/",
                     "order": "per step t; torch (C, H, W) or (n,), C order", "sha256": {}, "shape": {},
                     "spikes_per_step": {}, "spikes_sha256": {}, "u_sha256": {}}
    packed = {}
    for f in files:
        summary["sha256"][f] = sha((src / f).read_bytes())
    for pop, name in LAYERS.items():
        s = torch_order(np.load(src / f"{name}.npy")).astype(bool)
        summary["shape"][pop] = list(s.shape[1:])
        summary["spikes_per_step"][pop] = s.reshape(len(s), -1).sum(axis=1).tolist()
        summary["spikes_sha256"][pop] = [sha(np.packbits(st.ravel()).tobytes()) for st in s]
        if name in DRIVERS:
            packed[pop] = np.packbits(s.reshape(len(s), -1), axis=1)
        if pop not in ("layer0", "layer1"):
            u = torch_order(np.load(src / f"{name}-u.npy")).astype(np.int32)
            summary["u_sha256"][pop] = [sha(ut.tobytes()) for ut in u]
    (here / "ground_truth.json").write_text(json.dumps(summary, indent=1) + "\n")
    np.savez_compressed(here / "ground_truth.npz", **packed)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
