"""Steps per second of the Lava backend's fixed_pt run (run_network) on a 784-512-10 dense network.

Rate-coded random input (20 % of the 784 inputs spike per step), random even mixed-sign 8-bit weights,
soft-reset IF hidden layer, integrator read-out. For recording every population (record=True) and only the
output (record=False) it reports the wall time of one call (Lava compile and start-up included, paid once
per call), steps/s = samples * steps / wall, the start-up time (wall of a 1-sample, 1-step call) and the
steady rate samples * steps / (wall - start-up). Usage: python benchmarks/lava_speed.py [samples] [steps]
"""
from __future__ import annotations

import json
import sys
import time

import numpy as np
import scipy.sparse as sp

from hwsim.netdesc import Core, InputPort, Population, Projection, QuantNetwork
from neuromap.backends.lava import run_network


def network(rng: np.random.Generator) -> QuantNetwork:
    hidden = Population("hidden", 512, vth=600, du=4095, dv=0, bias_mant=0, bias_exp=0, v_init=0, core=0)
    out = Population("out", 10, vth=1, du=4095, dv=0, bias_mant=0, bias_exp=0, v_init=0, core=0, kind="integrator")
    w1 = sp.csr_matrix(rng.integers(-64, 64, (512, 784)) * 2)
    w2 = sp.csr_matrix(rng.integers(-100, 100, (10, 512)) * 2)
    return QuantNetwork(inputs=(InputPort("in", 784),), populations=(hidden, out),
                        projections=(Projection("fc1", "in", "hidden", w1), Projection("fc2", "hidden", "out", w2)),
                        cores=(Core(0, 0, 0, 0),), outputs=("out",))


def main() -> None:
    samples = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    rng = np.random.default_rng(0)
    qnet = network(rng)
    x = (rng.random((samples, steps, 784)) < 0.2).astype(np.int64)
    report = {"net": "784-512-10 dense", "samples": samples, "steps": steps}
    for record in (True, False):
        start = time.perf_counter()
        run_network(qnet, {"in": x[:1, :1]}, 1, record=record, progress=False)
        startup = time.perf_counter() - start
        start = time.perf_counter()
        res = run_network(qnet, {"in": x}, steps, record=record, progress=False)
        wall = time.perf_counter() - start
        key = "record_all" if record else "output_only"
        report[key] = {"wall_s": round(wall, 2), "steps_per_s": round(samples * steps / wall, 1),
                       "startup_s": round(startup, 2),
                       "steady_steps_per_s": round(samples * steps / max(wall - startup, 1e-9), 1)}
        if record:
            report["hidden_rate"] = round(float(res.spikes["hidden"].mean()), 3)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
