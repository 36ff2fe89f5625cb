"""Shared test helpers: a hypothesis strategy for random network graphs holding every node kind.

Under CI (``CI`` set) hypothesis is derandomized: a submission's CI run replays the same examples as the run
before it, so a landing never depends on luck; developers' runs keep exploring new examples.
"""
import os

import numpy as np
import pytest
from hypothesis import settings, strategies as st
from hypothesis.extra import numpy as hnp

from neuromap.ir import IF, LI, LIF, Affine, AvgPool2d, Conv2d, Flatten, Graph, Input, Linear, Output, SumPool2d
from neuromap.ir.nodes import RESET_TIMINGS, RESETS

settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


def _values(draw, shape, lo, hi):
    return draw(hnp.arrays(np.float64, shape, elements=st.floats(lo, hi, allow_nan=False, width=64)))


def _param_shape(draw, shape):
    """Scalar, per-channel ((C, 1, 1) for (C, H, W)) or per-neuron."""
    per_channel = (shape[0],) + (1,) * (len(shape) - 1)
    return draw(st.sampled_from([(), per_channel, shape]))


def _leak(draw, shape, allow_zero=True):
    """v_decay: all zero (no leak) or all in (0, 1] — the two cases NIR can write."""
    if allow_zero and draw(st.booleans()):
        return np.zeros(_param_shape(draw, shape))
    return _values(draw, _param_shape(draw, shape), 0.01, 1.0)


def _spiking(draw, cls, shape):
    fields = dict(threshold=_values(draw, _param_shape(draw, shape), 0.1, 3.0),
                  bias=_values(draw, _param_shape(draw, shape), -1.0, 1.0),
                  v_init=_values(draw, _param_shape(draw, shape), -1.0, 1.0),
                  reset=draw(st.sampled_from(RESETS)), reset_timing=draw(st.sampled_from(RESET_TIMINGS)))
    if cls is LIF:
        fields.update(v_decay=_leak(draw, shape), i_decay=_values(draw, _param_shape(draw, shape), 0.0, 1.0))
    return cls(shape, **fields, metadata=draw(st.sampled_from([{}, {"layer": 1, "note": ["x", None]}])))


@st.composite
def random_graphs(draw) -> Graph:
    """conv -> LIF -> pool -> pool -> flatten -> affine -> IF -> {linear, linear} -> LI / LIF -> two outputs."""
    groups, cin_g, cout_g = draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
    cin, cout, size = groups * cin_g, groups * cout_g, draw(st.integers(4, 6))
    k, pad, stride = draw(st.integers(1, 3)), draw(st.integers(0, 1)), draw(st.integers(1, 2))
    conv = Conv2d((cin, size, size), _values(draw, (cout, cin_g, k, k), -1, 1), _values(draw, (cout,), -1, 1),
                  stride=stride, padding=pad, groups=groups)
    shape = conv.output_shape
    pool_cls = draw(st.sampled_from([AvgPool2d, SumPool2d]))
    pool = pool_cls(shape, kernel_size=draw(st.integers(1, min(2, *shape[1:]))), padding=0)
    pool2 = SumPool2d(pool.output_shape, kernel_size=1)
    flat = Flatten(pool2.output_shape)
    n_hidden, n_out = draw(st.integers(1, 5)), draw(st.integers(1, 4))
    nodes = {
        "in": Input((cin, size, size)), "conv": conv, "lif": _spiking(draw, LIF, shape), "pool": pool,
        "pool2": pool2, "flat": flat,
        "fc": Affine(_values(draw, (n_hidden, flat.output_shape[0]), -2, 2), _values(draw, (n_hidden,), -1, 1)),
        "if": _spiking(draw, IF, (n_hidden,)),
        "lin_a": Linear(_values(draw, (n_out, n_hidden), -2, 2)),
        "lin_b": Linear(_values(draw, (n_out, n_hidden), -2, 2)),
        "li": LI((n_out,), v_decay=_leak(draw, (n_out,)), i_decay=_values(draw, _param_shape(draw, (n_out,)), 0, 1),
                 bias=_values(draw, _param_shape(draw, (n_out,)), -1, 1)),
        "lif_out": _spiking(draw, LIF, (n_out,)),
        "out": Output((n_out,)), "out_spikes": Output((n_out,)),
    }
    edges = [("in", "conv"), ("conv", "lif"), ("lif", "pool"), ("pool", "pool2"), ("pool2", "flat"), ("flat", "fc"),
             ("fc", "if"), ("if", "lin_a"), ("if", "lin_b"), ("lin_a", "li"), ("lin_b", "li"), ("lin_b", "lif_out"),
             ("li", "out"), ("lif_out", "out_spikes")]
    metadata = draw(st.sampled_from([{}, {"source": "test", "accuracy": 0.5, "classes": [0, 1]}]))
    return Graph(nodes, edges, metadata)


@pytest.fixture(scope="session")
def graph_strategy():
    return random_graphs()


def assert_same_graph(a: Graph, b: Graph) -> None:
    """Node names and order, kinds, edges, metadata and every field equal, arrays bit for bit and shape."""
    assert list(a.nodes) == list(b.nodes)
    assert a.edges == b.edges
    assert a.metadata == b.metadata
    for name, node in a.nodes.items():
        other = b.nodes[name]
        assert type(node) is type(other), name
        for field, value in node.params().items():
            got = other.params()[field]
            if isinstance(value, np.ndarray):
                assert got.shape == value.shape and np.array_equal(got, value), (name, field, value, got)
            else:
                assert got == value, (name, field, value, got)


@pytest.fixture(scope="session")
def same_graph():
    return assert_same_graph
