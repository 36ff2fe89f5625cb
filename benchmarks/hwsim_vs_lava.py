"""hwsim vs Lava fixed_pt: the same quantized networks, the same inputs and steps, spikes compared and wall times.

Networks:
* ``mlp`` — 784-512-10 on mnist5k test images as Poisson spikes: a ReLU MLP without biases trained for a
  few epochs, converted to soft-reset IF neurons (threshold = 99.9th percentile of the hidden activations
  on training data) and a leaky-integrator read-out, compiled with ``neuromap.compile`` for loihi2
  (spike inputs); the compiled ``Mapping.netdesc()`` is what both simulators run.
* ``conv`` — mnist5k images as Poisson spikes -> conv 8x3x3 stride 2 pad 1 -> IF -> conv 16x3x3 stride 2
  pad 1 -> LIF -> 10 leaky integrators, random weights, compiled the same way.
* ``sparse10k`` — 1,000 Poisson inputs -> 4,000 -> 4,000 -> 2,000 LIF neurons (leaky, zero reset), 100
  random synapses per neuron (1.0 M in all): built directly as a QuantNetwork (random even weights,
  weight_exp 1, 1,024 neurons per core, 10 cores), since its sparse random matrices have no layer form.

Lava runs one sample at a time (its run_network lays samples end to end in one compiled network); it is
timed on 1 and on ``--lava-samples`` samples (best of two runs each), and its wall time for the full
workload is extrapolated linearly: t(1) + (N - 1) * per-sample time (the start-up paid once). hwsim runs
the full workload of N samples at batch 1 (on --device and on the CPU; the faster counts) and in batches,
best of two runs each. Both get the same inputs (spikes as bool arrays) and record spikes, v and u of
every population (hwsim without event counts; ``hwsim_events_sample_steps_per_s`` is the same run with
them). ``--quick``: 48 samples, Lava on 12, batch 48 (the figures of a short run; the goals are read from a
full one). Last stdout line: one JSON object.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import scipy.sparse as sp
import torch

from hwsim.netdesc import Core, InputPort, Population, Projection, QuantNetwork
from hwsim.sim import simulate
from neuromap.backends.lava import run_network
from neuromap.data import load, poisson_encode
from neuromap.ir import IF, LI, LIF, Conv2d, Flatten, Input, Linear, Output, sequential
from neuromap.mapping import Mapping

NEURONS_PER_CORE = 1024  # Loihi 1: 1,024 compartments per core (docs/reference/loihi_lava.md §5.1)
MESH_WIDTH = 8


def log(*parts) -> None:
    print(*parts, file=sys.stderr, flush=True)


def placed(pops: list[dict]) -> tuple[tuple[Population, ...], tuple[Core, ...]]:
    """Populations sliced into cores of NEURONS_PER_CORE, cores laid row-major on one chip's mesh."""
    out: list[Population] = []
    next_core = 0
    for spec in pops:
        n = spec["size"]
        slices = np.arange(n) // NEURONS_PER_CORE + next_core
        next_core = int(slices[-1]) + 1
        out.append(Population(core=slices, **spec))
    cores = tuple(Core(k, 0, k % MESH_WIDTH, k // MESH_WIDTH) for k in range(next_core))
    return tuple(out), cores


def spike_inputs(images: np.ndarray, steps: int, seed: int) -> np.ndarray:
    return poisson_encode(images.reshape(len(images), -1), steps, seed=seed).numpy().astype(np.int64)


def compiled(graph) -> Mapping:
    import neuromap

    return neuromap.compile(graph, "loihi2", input_encoding="spikes")


def mlp(samples: int, steps: int) -> tuple[QuantNetwork, dict, np.ndarray]:
    data = load("mnist5k").flat()
    torch.manual_seed(0)
    fc1, fc2 = torch.nn.Linear(784, 512, bias=False), torch.nn.Linear(512, 10, bias=False)
    model = torch.nn.Sequential(fc1, torch.nn.ReLU(), fc2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    for _ in range(4):
        for idx in torch.randperm(len(x)).split(64):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    w1, w2 = (m.weight.detach().numpy().astype(np.float64) for m in (fc1, fc2))
    theta = float(np.percentile(np.maximum(data.x_train @ w1.T, 0), 99.9))
    graph = sequential([("x", Input((784,))), ("fc1", Linear(w1)),
                        ("hidden", IF((512,), threshold=np.array(theta), reset="subtract")),
                        ("fc2", Linear(w2)), ("out", LI((10,))), ("y", Output((10,)))])
    mapping = compiled(graph)
    inputs = mapping.encode_inputs(spike_inputs(data.x_test[:samples], steps, 1).astype(np.float32))
    return mapping.netdesc(), inputs, data.y_test[:samples]


def sparse10k(samples: int, steps: int) -> tuple[QuantNetwork, dict, None]:
    rng = np.random.default_rng(0)
    sizes = {"x": 1000, "l1": 4000, "l2": 4000, "l3": 2000}
    fan_in = 100
    projs = []
    for src, dst in (("x", "l1"), ("l1", "l2"), ("l2", "l3")):
        n_dst, n_src = sizes[dst], sizes[src]
        cols = np.stack([rng.choice(n_src, fan_in, replace=False) for _ in range(n_dst)]).ravel()
        rows = np.repeat(np.arange(n_dst), fan_in)
        vals = 2 * rng.integers(-48, 56, rows.size)  # excitation-dominated, even (mixed sign)
        projs.append(Projection(f"{src}->{dst}", src, dst,
                                sp.csr_matrix((vals, (rows, cols)), shape=(n_dst, n_src)), 1))
    pops, cores = placed([dict(name=n, size=sizes[n], vth=2000, du=2048, dv=512, bias_mant=0, bias_exp=0, v_init=0,
                               reset="zero") for n in ("l1", "l2", "l3")])
    qnet = QuantNetwork(inputs=(InputPort("x", 1000),), populations=pops, projections=tuple(projs), cores=cores,
                        outputs=("l3",))
    return qnet, {"x": (rng.random((samples, steps, 1000)) < 0.1).astype(np.int64)}, None


def conv(samples: int, steps: int) -> tuple[QuantNetwork, dict, None]:
    rng = np.random.default_rng(1)
    data = load("mnist5k")
    c1 = Conv2d((1, 28, 28), rng.normal(0, 1, (8, 1, 3, 3)), np.zeros(8), stride=(2, 2), padding=(1, 1))
    c2 = Conv2d((8, 14, 14), rng.normal(0, 1, (16, 8, 3, 3)), np.zeros(16), stride=(2, 2), padding=(1, 1))
    graph = sequential([("x", Input((1, 28, 28))), ("conv1", c1),
                        ("c1", IF((8, 14, 14), threshold=np.array(1.8), reset="subtract")), ("conv2", c2),
                        ("c2", LIF((16, 7, 7), threshold=np.array(6.0), v_decay=np.array(0.0625), reset="zero")),
                        ("flat", Flatten((16, 7, 7))), ("fc", Linear(rng.normal(0, 1, (10, 784)))),
                        ("out", LI((10,))), ("y", Output((10,)))])
    mapping = compiled(graph)
    inputs = mapping.encode_inputs(spike_inputs(data.x_test[:samples], steps, 2).reshape(samples, steps, 1, 28, 28)
                                   .astype(np.float32))
    return mapping.netdesc(), {name: x.reshape(samples, steps, -1) for name, x in inputs.items()}, None


def as_bits(qnet: QuantNetwork, inputs: dict) -> dict:
    """Binary ports' spikes as bool arrays, the natural type of spikes (both simulators accept it; hwsim then
    skips a conversion and a range check of 8-byte integers): the same values, checked to be 0/1."""
    out = dict(inputs)
    for port in qnet.inputs:
        if port.graded_bits == 0:
            arr = np.asarray(inputs[port.name])
            if not np.isin(arr, (0, 1)).all():
                raise SystemExit(f"input {port.name!r} of a binary port holds values other than 0/1")
            out[port.name] = arr.astype(np.bool_)
    return out


def timed(fn, repeats: int = 1):
    """fn's result and its best wall time over ``repeats`` runs (a loaded machine only ever slows it)."""
    best = None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        elapsed = time.perf_counter() - start
        best = elapsed if best is None else min(best, elapsed)
    return out, best


def measure(name: str, qnet: QuantNetwork, inputs: dict, labels, steps: int, args) -> dict:
    samples = next(iter(inputs.values())).shape[0]
    k = args.lava_samples
    head = {key: arr[:k] for key, arr in inputs.items()}
    log(f"[{name}] Lava: 1 sample, then {k}, twice each")
    one = {key: arr[:1] for key, arr in head.items()}
    _, t_one = timed(lambda: run_network(qnet, one, steps, progress=False), 2)
    lava, t_k = timed(lambda: run_network(qnet, head, steps, progress=False), 2)
    per_sample = (t_k - t_one) / (k - 1)
    if per_sample <= 0:
        raise SystemExit(f"[{name}] Lava start-up noise exceeds {k - 1} samples of work; raise --lava-samples")
    lava_total = t_one + (samples - 1) * per_sample
    device = args.device
    simulate(qnet, head, steps, device=device)  # warm-up: first CUDA/BLAS calls
    batch1 = {}
    for dev in dict.fromkeys([device, "cpu"]):  # a GPU at batch 1 waits on kernel launches: time the CPU too
        log(f"[{name}] hwsim on {dev}: {samples} samples at batch 1")
        batch1[dev] = timed(lambda dev=dev: simulate(qnet, inputs, steps, device=dev, batch_size=1, events=False), 2)
    b1_device = min(batch1, key=lambda d: batch1[d][1])
    t_b1 = batch1[b1_device][1]
    best = (1, batch1[device][1], batch1[device][0])
    for batch in args.batches:
        res, t = timed(lambda batch=batch: simulate(qnet, inputs, steps, device=device, batch_size=batch,
                                                    events=False), 2)
        log(f"[{name}] hwsim batch {batch}: {t:.3f} s")
        if t < best[1]:
            best = (batch, t, res)
    batch, t_best, res = best
    _, t_events = timed(lambda: simulate(qnet, inputs, steps, device=device, batch_size=batch), 2)
    same_spikes = all(np.array_equal(lava.spikes[p], res.spikes[p][:k]) and
                      all(np.array_equal(r.spikes[p], res.spikes[p]) for r, _ in batch1.values())
                      for p in lava.spikes)
    same_v = all(np.array_equal(lava.v[p], res.v[p][:k]) and np.array_equal(lava.u[p], res.u[p][:k])
                 for p in lava.v)
    out = {
        "neurons": sum(p.size for p in qnet.populations), "synapses": sum(pr.weights.nnz for pr in qnet.projections),
        "cores": len(qnet.cores), "samples": samples, "steps": steps,
        "spike_rate": {p: round(float(s.mean()), 4) for p, s in res.spikes.items()},
        "lava_samples_measured": k,
        "lava_wall_s_1_sample": round(t_one, 3), f"lava_wall_s_{k}_samples": round(t_k, 3),
        "lava_wall_s_extrapolated": round(lava_total, 3),
        "lava_steps_per_s": round(steps / per_sample, 1),
        "hwsim_wall_s_batch1": round(t_b1, 3), "hwsim_wall_s_best": round(t_best, 3), "hwsim_best_batch": batch,
        "hwsim_steps_per_s_batch1": round(samples * steps / t_b1, 1), "hwsim_batch1_device": b1_device,
        **{f"hwsim_steps_per_s_batch1_{d}": round(samples * steps / t, 1) for d, (_, t) in batch1.items()},
        "hwsim_sample_steps_per_s": round(samples * steps / t_best, 1),
        "hwsim_events_sample_steps_per_s": round(samples * steps / t_events, 1),
        "speedup": round(lava_total / t_best, 1), "speedup_batch1": round(lava_total / t_b1, 1),
        "spikes_identical": bool(same_spikes), "v_u_identical": bool(same_v),
    }
    if labels is not None:
        out["hwsim_accuracy"] = float((res.scores("out").argmax(axis=1) == labels).mean())
    log(f"[{name}] {json.dumps(out)}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--lava-samples", type=int, default=24, help="samples Lava runs (>= 2); the rest extrapolated")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="torch CPU threads (on a loaded machine 1 avoids threads waiting for each other)")
    parser.add_argument("--batches", type=int, nargs="+", default=[50, 200])
    parser.add_argument("--networks", nargs="+", default=["mlp", "sparse10k", "conv"])
    parser.add_argument("--quick", action="store_true", help="48 samples, Lava on 12 of them, batch 48")
    args = parser.parse_args()
    if args.quick:
        args.samples, args.lava_samples, args.batches = 48, 12, [48]
    if args.lava_samples < 2:
        parser.error("--lava-samples must be at least 2 (start-up and per-sample time are separated)")
    torch.set_num_threads(args.threads)
    builders = {"mlp": mlp, "sparse10k": sparse10k, "conv": conv}
    results = {}
    for name in args.networks:
        qnet, inputs, labels = builders[name](args.samples, args.steps)
        inputs = as_bits(qnet, inputs)
        results[name] = measure(name, qnet, inputs, labels, args.steps, args)
    print(json.dumps({"device": args.device, "torch_threads": torch.get_num_threads(), "quick": args.quick,
                      "lava_extrapolation": "t(1 sample) + (samples - 1) * (t(k) - t(1)) / (k - 1), "
                                            "best of 2 runs each",
                      "networks_built_by": {"mlp": "neuromap.compile (loihi2)", "conv": "neuromap.compile (loihi2)",
                                            "sparse10k": "this script, directly (see its docstring)"},
                      "networks": results}))


if __name__ == "__main__":
    main()
