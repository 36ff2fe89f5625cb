"""The ``conv`` synapse strategy (hwsim.conv geometry run with torch convolutions) against the unrolled matrix.

References: the geometry's matrix against torch's conv2d of the input basis vectors (another engine's
definition of the convolution); the conv strategy against the ``sparse`` strategy (scipy, int64, exact
without any bound) on random conv nets, spike for spike, state for state and event for event; a compiled
conv net's geometry against the quantizer's own unrolled weights (``QuantProjection.integer_matrix``).
"""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from netgen import population

from hwsim.conv import ConvGeometry, ConvGeometryError, ConvStage
from hwsim.errors import SimOptionError
from hwsim.memory import bytes_per_sample, samples_per_chunk
from hwsim.netdesc import Core, InputPort, NetDescError, Projection, QuantNetwork
from hwsim.sim import simulate
from hwsim.synapse import SynapseOp

CPU = torch.device("cpu")


def basis_matrix(stages: list[ConvStage], in_shape: tuple[int, int, int]) -> sp.csr_matrix:
    """The chain as a matrix, by running torch's conv2d in float64 on every input basis vector."""
    n_in = int(np.prod(in_shape))
    x = torch.eye(n_in, dtype=torch.float64).view(n_in, *in_shape)
    for s in stages:
        x = F.conv2d(x, torch.tensor(s.kernel, dtype=torch.float64), None, s.stride, s.padding, s.dilation,
                     s.groups)
    return sp.csr_matrix(x.reshape(n_in, -1).T.round().numpy().astype(np.int64))


def random_stage(rng: np.random.Generator, cin: int, *, pool: bool = False) -> ConvStage:
    if pool:  # a sum pool: depthwise, one constant per channel
        k = int(rng.integers(2, 4))
        values = rng.integers(1, 4, cin)
        return ConvStage(np.broadcast_to(values.reshape(-1, 1, 1, 1), (cin, 1, k, k)), stride=int(rng.integers(1, 3)),
                         padding=int(rng.integers(0, k // 2 + 1)), groups=cin)
    groups = int(rng.choice([g for g in (1, 2) if cin % g == 0]))
    cout = groups * int(rng.integers(1, 3))
    k = int(rng.integers(1, 4))
    kernel = 2 * rng.integers(-20, 21, (cout, cin // groups, k, k))
    return ConvStage(kernel, stride=int(rng.integers(1, 3)), padding=int(rng.integers(0, 2)),
                     dilation=int(rng.integers(1, 3)) if k > 1 else 1, groups=groups)


def random_geometry(rng: np.random.Generator, in_shape: tuple[int, int, int], pool: bool) -> ConvGeometry:
    stages = [random_stage(rng, in_shape[0])]
    if pool:
        stages.append(random_stage(rng, stages[0].kernel.shape[0], pool=True))
    return ConvGeometry(in_shape, tuple(stages))


@pytest.mark.parametrize("seed", range(6))
def test_geometry_matrix_is_torchs_convolution(seed):
    rng = np.random.default_rng(seed)
    geometry = random_geometry(rng, (2, 7, 6), pool=seed % 2 == 1)
    expected = basis_matrix(list(geometry.stages), geometry.input_shape)
    got = geometry.matrix()
    assert got.shape == expected.shape == (geometry.out_size, geometry.in_size)
    assert (got != expected).nnz == 0


def conv_network(seed: int, graded: bool) -> QuantNetwork:
    """input (2, 8, 8) -> conv[+pool] -> LIF -> conv -> LIF -> identity (a residual-style 1x1) -> LIF,
    every projection given by its geometry alone (weights unrolled by Projection)."""
    rng = np.random.default_rng(seed)
    cores = tuple(Core(index=k, chip=k // 2, x=k % 2, y=k // 2) for k in range(4))
    shape = (2, 8, 8)
    inputs = (InputPort("x", int(np.prod(shape)), graded_bits=6 if graded else 0),)
    g1 = random_geometry(rng, shape, pool=seed % 2 == 0)
    g2 = ConvGeometry(g1.output_shape, (random_stage(rng, g1.output_shape[0]),))
    g3 = ConvGeometry(g2.output_shape, (ConvStage(rng.integers(1, 9, (g2.output_shape[0], 1, 1, 1)),
                                                  groups=g2.output_shape[0]),))
    pops = tuple(population(rng, name, g.out_size, [0, 1, 2, 3], vth_max=60,
                            reset=str(rng.choice(["subtract", "zero"])),
                            timing=str(rng.choice(["immediate", "next_step"])))
                 for name, g in (("a", g1), ("b", g2), ("c", g3)))
    projs = (Projection("x->a", "x", "a", conv=g1, weight_exp=int(rng.integers(-2, 2))),
             Projection("a->b", "a", "b", conv=g2, weight_exp=int(rng.integers(-1, 3))),
             Projection("b->c", "b", "c", conv=g3, weight_exp=1))
    return QuantNetwork(inputs, pops, projs, cores, outputs=("c",))


@pytest.mark.parametrize("graded", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_conv_strategy_equals_sparse_on_random_conv_nets(seed, graded):
    qnet = conv_network(seed, graded)
    rng = np.random.default_rng(100 + seed)
    shape = (3, 7, qnet.inputs[0].size)
    x = rng.integers(-63, 64, shape) if graded else (rng.random(shape) < 0.5).astype(np.int64)
    conv = simulate(qnet, {"x": x}, 7, device="cpu")
    sparse = simulate(qnet, {"x": x}, 7, device="cpu", synapses="sparse")
    assert all(op.strategy == "conv" for op in _plan_ops(qnet))
    for trace in ("spikes", "v", "u"):
        for name in ("a", "b", "c"):
            np.testing.assert_array_equal(getattr(conv, trace)[name], getattr(sparse, trace)[name])
    assert sum(int(s.sum()) for s in conv.spikes.values()) > 0  # the comparison saw spikes
    for key in ("synops", "spikes", "messages_in", "hops", "active_neurons"):
        np.testing.assert_array_equal(getattr(conv.events, key), getattr(sparse.events, key))


def _plan_ops(qnet: QuantNetwork) -> list[SynapseOp]:
    x_max = {i.name: max(1, (1 << i.graded_bits) - 1) for i in qnet.inputs}
    return [SynapseOp(pr.weights, x_max.get(pr.src, 1), CPU, graded=pr.src in {i.name for i in qnet.inputs
                                                                               if i.graded_bits}, conv=pr.conv)
            for pr in qnet.projections]


def wide_geometry(cin: int) -> tuple[ConvGeometry, sp.csr_matrix]:
    """A 3x3 conv of ``cin`` channels on a 3x3 input into 2 outputs at the centre, every weight 255."""
    geometry = ConvGeometry((cin, 3, 3), (ConvStage(np.full((2, cin, 3, 3), 255)),))
    return geometry, geometry.matrix()


def exact_products(geometry: ConvGeometry, w: sp.csr_matrix, x: np.ndarray, x_max: int, graded: bool):
    conv = SynapseOp(w, x_max, CPU, graded=graded, conv=geometry)
    reference = SynapseOp(w, x_max, CPU, strategy="sparse", graded=graded)
    xt = torch.from_numpy(x)
    return conv, conv.exact(xt).numpy(), reference.exact(xt).numpy()


def test_graded_payloads_beyond_the_float32_bound_are_sliced():
    """24-bit payloads into a 3x3x8 kernel of 255s: sums reach 2^24 * 18,360, so the payloads are split into
    slices whose products stay below 2^24 and recombined exactly (float32 on the whole would round)."""
    geometry, w = wide_geometry(8)
    x_max = (1 << 24) - 1
    rng = np.random.default_rng(0)
    x = rng.integers(-x_max, x_max + 1, (5, geometry.in_size))
    x[0] = x_max  # the largest sum
    op, got, expected = exact_products(geometry, w, x, x_max, graded=True)
    assert op.conv.slices > 1 and op.conv.dtype == torch.float32
    assert np.abs(expected).max() > 1 << 24
    np.testing.assert_array_equal(got, expected)


def test_a_kernel_whose_sums_pass_2_23_falls_back_to_float64():
    """cin = 3,700: one output sums 33,300 weights of 255 = 8,491,500 > 2^23, so no payload slice of even one
    bit keeps float32 exact for graded input; binary spikes (|x| <= 1) still run in float32."""
    geometry, w = wide_geometry(3700)
    rng = np.random.default_rng(1)
    x = rng.integers(2, 4, (4, geometry.in_size))
    op, got, expected = exact_products(geometry, w, x, 3, graded=True)
    assert op.conv.dtype == torch.float64 and op.conv.slices == 1
    assert ((expected > 1 << 24) & (expected % 2 == 1)).any()  # odd above 2^24: no float32 holds it
    np.testing.assert_array_equal(got, expected)
    spikes = rng.random((4, geometry.in_size)) < 0.9
    op, got, expected = exact_products(geometry, w, spikes, 1, graded=False)
    assert op.conv.dtype == torch.float32
    np.testing.assert_array_equal(got, expected)


def test_projection_checks_its_geometry_against_its_weights():
    geometry, w = wide_geometry(2)
    assert (Projection("p", "a", "b", w, conv=geometry).weights != w).nnz == 0
    wrong = w.tolil()
    wrong[1, 4] = 254
    with pytest.raises(NetDescError, match=r"projection 'p'\.conv: the geometry's kernels differ from the weights "
                                           r"in 1 of 36 entries") as info:
        Projection("p", "a", "b", wrong.tocsr(), conv=geometry)
    assert info.value.field == "conv"
    with pytest.raises(NetDescError, match=r"geometry maps 18 to 2 neurons, the weights 17 to 2"):
        Projection("p", "a", "b", w[:, :17], conv=geometry)
    with pytest.raises(NetDescError, match="give its weights or its conv geometry"):
        Projection("p", "a", "b")


def test_geometry_errors_name_the_field():
    with pytest.raises(ConvGeometryError, match=r"groups = 3: must be a positive divisor of the 4 output channels"):
        ConvStage(np.ones((4, 1, 3, 3), np.int64), groups=3)
    with pytest.raises(ConvGeometryError, match=r"1 input channels per group x 1 groups, but the input has 2"):
        ConvGeometry((2, 5, 5), (ConvStage(np.ones((4, 1, 3, 3), np.int64)),))
    with pytest.raises(ConvGeometryError, match=r"kernel 3x3 does not fit the input 2x2"):
        ConvGeometry((1, 2, 2), (ConvStage(np.ones((1, 1, 3, 3), np.int64)),))


def test_compiled_conv_net_runs_its_convolutions_exactly():
    """A compiled conv -> avg pool -> IF -> conv -> IF -> conv -> IF net with an identity shortcut over two
    layers: conv, pool and identity
    projections get a geometry that unrolls to the quantizer's own matrix; hwsim gives the same traces with
    the conv strategy as with the sparse one."""
    import neuromap
    from neuromap.ir import IF, LI, AvgPool2d, Conv2d, Flatten, Graph, Input, Linear, Output

    rng = np.random.default_rng(3)
    nodes = {"x": Input((2, 8, 8)),
             "c1": Conv2d((2, 8, 8), rng.normal(0, 0.6, (4, 2, 3, 3)), np.zeros(4), padding=(1, 1)),
             "p1": AvgPool2d((4, 8, 8), (2, 2)), "n1": IF((4, 4, 4), threshold=np.array(1.0)),
             "c2": Conv2d((4, 4, 4), rng.normal(0, 0.4, (4, 4, 3, 3)), np.zeros(4), padding=(1, 1)),
             "n2": IF((4, 4, 4), threshold=np.array(1.0)),
             "c3": Conv2d((4, 4, 4), rng.normal(0, 0.4, (4, 4, 3, 3)), np.zeros(4), padding=(1, 1)),
             "n3": IF((4, 4, 4), threshold=np.array(1.0)),
             "f": Flatten((4, 4, 4)), "fc": Linear(rng.normal(0, 0.3, (3, 64))), "out": LI((3,)), "y": Output((3,))}
    edges = [("x", "c1"), ("c1", "p1"), ("p1", "n1"), ("n1", "c2"), ("c2", "n2"), ("n2", "c3"), ("c3", "n3"),
             ("n1", "n3"), ("n3", "f"), ("f", "fc"), ("fc", "out"), ("out", "y")]
    graph = Graph(nodes, edges)
    mapping = neuromap.compile(graph, "loihi2")
    qnet = mapping.netdesc()
    with_geometry = {pr.name for pr in qnet.projections if pr.conv is not None}
    assert with_geometry == {"c1", "c2", "c3", "n1->n3"}
    for qp, pr in zip(mapping.quantized.projections, qnet.projections):
        reference = qp.integer_matrix(graph)
        assert (reference != pr.weights).nnz == 0, pr.name
    x = mapping.encode_inputs(np.repeat(rng.random((3, 1, 2, 8, 8)), 6, axis=1))
    conv = simulate(qnet, x, 6, device="cpu")
    sparse = simulate(qnet, x, 6, device="cpu", synapses="sparse")
    assert int(conv.spikes["n1"].sum()) > 0
    for trace in ("spikes", "v", "u"):
        for name in conv.spikes:
            np.testing.assert_array_equal(getattr(conv, trace)[name], getattr(sparse, trace)[name])


def test_sharding_over_two_cpu_devices_gives_the_one_device_result():
    """devices=["cpu", "cpu"] splits the batch into two shards run in two threads, each in chunks of 2: the
    traces, events and saturation warnings equal one device's run of the whole batch in one chunk."""
    qnet = conv_network(1, graded=True)
    rng = np.random.default_rng(7)
    x = {"x": rng.integers(-63, 64, (7, 5, qnet.inputs[0].size))}
    one = simulate(qnet, x, 5, device="cpu", batch_size=7)
    two = simulate(qnet, x, 5, devices=["cpu", "cpu"], batch_size=2)
    for trace in ("spikes", "v", "u"):
        for name in one.spikes:
            np.testing.assert_array_equal(getattr(two, trace)[name], getattr(one, trace)[name])
    for key in ("synops", "spikes", "messages_out", "hops", "active_neurons", "traffic"):
        np.testing.assert_array_equal(getattr(two.events, key), getattr(one.events, key))
    with pytest.raises(SimOptionError, match="give device or devices, not both"):
        simulate(qnet, x, 5, device="cpu", devices=["cpu"])


def test_chunks_are_sized_from_the_free_memory():
    """bytes per sample = T x (1 byte per neuron and input + 33 per neuron of the largest population + 128
    per core), counted by hand for conv_network(0); half the given memory over that, at least one sample."""
    qnet = conv_network(0, graded=False)
    neurons = sum(p.size for p in qnet.populations) + qnet.inputs[0].size
    largest = max(p.size for p in qnet.populations)
    per_sample = 5 * (neurons + 33 * largest + 128 * 4)
    assert bytes_per_sample(qnet, 5) == per_sample
    assert samples_per_chunk(qnet, 5, CPU, free=2 * 10 * per_sample + 1) == 10
    assert samples_per_chunk(qnet, 5, CPU, free=1) == 1
    assert samples_per_chunk(qnet, 5, CPU) >= 1  # the machine's own MemAvailable


def test_counts_beyond_the_int8_split_use_an_exact_float_strategy():
    """A weight of 5,000 (an event table's synapses of one neuron onto one core can exceed 2,047) is no
    16 * high + low with an int8 high part: the default strategy sums it in float (5,003 = 5,000 + 3 by hand)
    and a forced int8 strategy is refused rather than wrapping (it gave 907)."""
    w = sp.csr_matrix(np.array([[5000, 3], [1, 2]]))
    x = torch.ones((40, 2), dtype=torch.bool)
    op = SynapseOp(w, 1, CPU)
    assert op.strategy == "gather"
    np.testing.assert_array_equal(op.exact(x)[0].numpy(), [5003, 3])
    with pytest.raises(SimOptionError, match="weights up to 5000 do not split into int8 parts"):
        SynapseOp(w, 1, CPU, strategy="int8")
