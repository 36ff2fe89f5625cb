"""Lowering: every projection's sparse matrix equals the torch ops it replaces (another engine: torch.nn.functional)."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from neuromap.errors import UnsupportedError
from neuromap.ir import IF, LI, AvgPool2d, Conv2d, Flatten, Graph, Input, Linear, Output, SumPool2d, sequential
from neuromap.ir.ops import stateless_op
from neuromap.passes.lower import conv_matrix, lower


@settings(max_examples=40, deadline=None)
@given(cin_g=st.integers(1, 3), groups=st.integers(1, 2), cout_g=st.integers(1, 3), size=st.integers(3, 9),
       k=st.integers(1, 3), stride=st.integers(1, 3), pad=st.integers(0, 2), dil=st.integers(1, 2),
       seed=st.integers(0, 2**16))
def test_conv_matrix_matches_torch(cin_g, groups, cout_g, size, k, stride, pad, dil, seed):
    if (size + 2 * pad - dil * (k - 1) - 1) < 0:
        return
    rng = np.random.default_rng(seed)
    cin, cout = cin_g * groups, cout_g * groups
    node = Conv2d((cin, size, size), rng.normal(size=(cout, cin_g, k, k)), np.zeros(cout), stride=stride,
                  padding=pad, dilation=dil, groups=groups)
    x = torch.tensor(rng.normal(size=(1, cin, size, size)))
    want = stateless_op(node)(x).reshape(-1).numpy()
    assert np.allclose(conv_matrix(node) @ x.reshape(-1).numpy(), want)


@pytest.mark.parametrize("cls", [AvgPool2d, SumPool2d])
def test_pool_matrix_matches_torch(cls):
    node = cls((2, 7, 7), 3, 2, 1)
    x = torch.rand(1, 2, 7, 7, dtype=torch.float64)
    assert np.allclose(conv_matrix(node) @ x.reshape(-1).numpy(), stateless_op(node)(x).reshape(-1).numpy())


def test_chains_are_merged_and_biases_become_currents():
    rng = np.random.default_rng(1)
    nodes = {"in": Input((1, 6, 6)), "c": Conv2d((1, 6, 6), rng.normal(size=(2, 1, 3, 3)), np.array([0.5, -1.0])),
             "n1": IF((2, 4, 4), threshold=1.0), "p": AvgPool2d((2, 4, 4), 2), "f": Flatten((2, 2, 2)),
             "a": Linear(rng.normal(size=(3, 8))), "g": Flatten((2, 4, 4)), "b": Linear(rng.normal(size=(3, 32))),
             "li": LI((3,)), "out": Output((3,))}
    edges = [("in", "c"), ("c", "n1"), ("n1", "p"), ("p", "f"), ("f", "a"), ("a", "li"), ("n1", "g"), ("g", "b"),
             ("b", "li"), ("li", "out")]
    low = lower(Graph(nodes, edges))
    assert [(p.src, p.dst, len(p.paths)) for p in low.projections] == [("in", "n1", 1), ("n1", "li", 2)]
    assert low.outputs == {"out": "li"}
    assert np.allclose(low.bias_current("n1"), np.repeat([0.5, -1.0], 16))
    merged = low.projections[1]
    x = torch.rand(1, 2, 4, 4, dtype=torch.float64)
    via_a = stateless_op(nodes["a"])(stateless_op(nodes["f"])(stateless_op(nodes["p"])(x)))
    via_b = stateless_op(nodes["b"])(stateless_op(nodes["g"])(x))
    assert np.allclose(merged.matrix(low.graph) @ x.reshape(-1).numpy(), (via_a + via_b).reshape(-1).numpy())


def test_output_must_read_a_population():
    g = sequential([("in", Input((2,))), ("fc", Linear(np.ones((2, 2)))), ("out", Output((2,)))])
    with pytest.raises(UnsupportedError, match="Output 'out' must read exactly one neuron population"):
        lower(g)
