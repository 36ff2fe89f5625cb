"""Random QuantNetworks for agreement tests (hwsim vs a step-by-step reference vs Lava), built directly.

``random_network`` draws a feed-forward net input -> hidden layers -> read-out whose knobs hit the
fixed-point edge cases: per-neuron thresholds, leaks and biases (zero leak, full leak, no current memory,
no current decay), mixed- and single-sign weights, weight_exp of both signs, graded inputs, skip
projections (two projections into one port), a convolution lowered to a sparse matrix with padding and
stride, populations sliced over several cores of two chips, and a "stress" mode with large weights
that forces u wrap-around and v saturation.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from hwsim.netdesc import LOIHI, Core, InputPort, Population, Projection, QuantNetwork


def conv_matrix(weight: np.ndarray, in_shape: tuple[int, int, int], stride: int, padding: int) -> sp.csr_matrix:
    """A 2-D convolution as a sparse (out_size, in_size) matrix, by convolving the input basis vectors."""
    n_in = int(np.prod(in_shape))
    basis = torch.eye(n_in, dtype=torch.float64).view(n_in, *in_shape)
    out = F.conv2d(basis, torch.as_tensor(weight, dtype=torch.float64), stride=stride, padding=padding)
    return sp.csr_matrix(out.reshape(n_in, -1).T.round().numpy().astype(np.int64))


def legal_weights(rng: np.random.Generator, shape: tuple[int, int], density: float, scale: int,
                  sign: str = "mixed") -> sp.csr_matrix:
    """Integer weights Lava keeps exactly: mixed-sign ones even in [-256, 254], single-sign ones |w| <= 255."""
    mask = rng.random(shape) < density
    if sign == "mixed":
        w = 2 * rng.integers(-(scale // 2), scale // 2 + 1, shape)
        w = np.clip(w, -256, 254)
    else:
        w = rng.integers(0, min(scale, 255) + 1, shape) * (1 if sign == "exc" else -1)
    return sp.csr_matrix(w * mask)


def population(rng: np.random.Generator, name: str, size: int, cores: list[int], *, kind: str = "spiking",
               reset: str = "subtract", timing: str = "immediate", vth_max: int = 400, stress: bool = False,
               per_neuron: bool = True) -> Population:
    def draw(lo, hi, special=()):
        """Per-neuron values in [lo, hi], with some neurons (or the whole population) on special values."""
        if not per_neuron:
            return int(rng.choice([*special, int(rng.integers(lo, hi + 1))]))
        vals = rng.integers(lo, hi + 1, size)
        for value in special:
            vals[rng.random(size) < 0.2] = value
        return vals

    n_cores = len(cores)
    slices = np.sort(rng.integers(0, n_cores, size))  # contiguous slices, as a partitioner would cut them
    bias_max = 4095 if stress else 300
    return Population(
        name=name, size=size,
        vth=draw(1, vth_max, (0, 1, LOIHI.vth_max) if stress else (0, 1)),
        du=draw(-1, 4095, (-1, 4095, 0)),
        dv=draw(0, 4096, (0, 4096)),
        bias_mant=draw(-bias_max, bias_max, (0,)),
        bias_exp=draw(-2, 7 if stress else 3, (0,)),
        v_init=draw(-5000, 5000, (0,)) if not stress else draw(-(2 ** 23 - 1), 2 ** 23 - 1, (0,)),
        core=np.asarray(cores)[slices], reset=reset, reset_timing=timing, kind=kind)


def random_network(seed: int, *, stress: bool = False, graded: bool = False, conv: bool = False,
                   layers: int = 2, per_neuron: bool = True) -> QuantNetwork:
    rng = np.random.default_rng(seed)
    cores = [Core(index=10 + k, chip=k // 3, x=k % 3, y=int(rng.integers(0, 3))) for k in range(6)]
    core_ids = [c.index for c in cores]
    scale = 254 if stress else 60
    exp_hi = 7 if stress else 2
    inputs, pops, projs = [], [], []
    if conv:
        in_shape = (2, 6, 6)
        inputs.append(InputPort("x", int(np.prod(in_shape)), graded_bits=4 if graded else 0))
        kernel = 2 * rng.integers(-(scale // 2), scale // 2 + 1, (3, 2, 3, 3))
        w = conv_matrix(kernel, in_shape, stride=2, padding=1)
        pops.append(population(rng, "conv", w.shape[0], core_ids[:2], stress=stress, per_neuron=per_neuron))
        projs.append(Projection("x->conv", "x", "conv", w, int(rng.integers(-2, exp_hi + 1))))
        prev = "conv"
    else:
        inputs.append(InputPort("x", 12, graded_bits=6 if graded else 0))
        prev = "x"
    sizes = {"x": inputs[0].size}
    if conv:
        sizes["conv"] = pops[0].size
    for k in range(layers):
        name = f"h{k}"
        size = int(rng.integers(5, 20))
        reset = str(rng.choice(["subtract", "zero"]))
        timing = str(rng.choice(["immediate", "next_step"]))
        pops.append(population(rng, name, size, list(rng.choice(core_ids, 2, replace=False)), reset=reset,
                               timing=timing, stress=stress, per_neuron=per_neuron))
        sign = str(rng.choice(["mixed", "mixed", "exc", "inh"]))
        w = legal_weights(rng, (size, sizes[prev]), 0.6, scale, sign)
        projs.append(Projection(f"{prev}->{name}", prev, name, w, int(rng.integers(-3, exp_hi + 1))))
        if k == 1:  # a skip projection: two inputs summed at one port
            w = legal_weights(rng, (size, sizes["x"]), 0.5, scale)
            projs.append(Projection(f"x->{name}", "x", name, w, int(rng.integers(-2, exp_hi + 1))))
        sizes[name] = size
        prev = name
    pops.append(population(rng, "out", 4, [core_ids[-1]], kind="integrator", stress=stress, per_neuron=per_neuron))
    projs.append(Projection(f"{prev}->out", prev, "out", legal_weights(rng, (4, sizes[prev]), 0.8, scale),
                            int(rng.integers(-1, exp_hi + 1))))
    return QuantNetwork(inputs=tuple(inputs), populations=tuple(pops), projections=tuple(projs),
                        cores=tuple(cores), outputs=("out",))


def random_inputs(qnet: QuantNetwork, seed: int, batch: int, steps: int, rate: float = 0.4) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    data = {}
    for port in qnet.inputs:
        shape = (batch, steps, port.size)
        if port.graded_bits:
            top = (1 << port.graded_bits) - 1
            data[port.name] = rng.integers(-top, top + 1, shape) * (rng.random(shape) < rate)
        else:
            data[port.name] = (rng.random(shape) < rate).astype(np.int64)
    return data


def digits_mlp(seed: int = 0, hidden: int = 16, *, hidden_name: str = "if1", readout_name: str = "li"):
    """A seeded, untrained 64-hidden-10 IF/LI graph for the 8x8 digits: the CLI tests' small model."""
    from neuromap.ir import IF, LI, Affine, Input, Output, sequential

    rng = np.random.default_rng(seed)
    return sequential([("in", Input(shape=(64,))),
                       ("fc1", Affine(weight=rng.normal(0, 0.3, (hidden, 64)), bias=np.zeros(hidden))),
                       (hidden_name, IF(shape=(hidden,), threshold=1.0)),
                       ("fc2", Affine(weight=rng.normal(0, 0.5, (10, hidden)), bias=np.zeros(10))),
                       (readout_name, LI(shape=(10,))), ("out", Output(shape=(10,)))])
