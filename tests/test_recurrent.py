"""Recurrent graphs (issue 11.1-2): cycles through populations in the IR, the torch reference's semantics
(every recurrent projection delays by one step, in zero-delay mode too), checked against a hand-written
loop and snnTorch's RLeaky/RSynaptic."""
from __future__ import annotations

import re
from pathlib import Path

import nir
import numpy as np
import pytest
import snntorch as snn
import torch
from snntorch.export_nir import _extract_snntorch_module, export_to_nir

import mappings
import neuromap
from neuromap.backends.torch_sim import simulate
from neuromap.errors import FitError, GraphError
from neuromap.ir import LI, LIF, Affine, Graph, Input, Linear, Output, from_nir, read_nir, to_nir
from neuromap.mapping import compiled
from neuromap.passes.lower import lower

RNG = np.random.default_rng(11)


def one_line(exc_info, *fragments):
    text = str(exc_info.value)
    assert "\n" not in text
    for fragment in fragments:
        assert fragment in text, (fragment, text)


def rnn(n_in=3, n=4, *, w_in=None, w_rec=None, b_in=None, b_rec=None, **lif):
    """in -> fc -> lif, lif -> rec -> lif (the NIR paper's Braille RSNN layer), lif -> out."""
    w_in = RNG.normal(size=(n, n_in)) if w_in is None else w_in
    w_rec = RNG.normal(size=(n, n)) if w_rec is None else w_rec
    nodes = {"in": Input((n_in,)), "fc": Affine(w_in, np.zeros(n) if b_in is None else b_in),
             "lif": LIF((n,), **({"threshold": 1.0} | lif)),
             "rec": Affine(w_rec, np.zeros(n) if b_rec is None else b_rec), "out": Output((n,))}
    return Graph(nodes, [("in", "fc"), ("fc", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "out")])


# ------------------------------------------------------------------------------------------ the IR
def test_cycle_through_a_population_is_a_recurrent_edge():
    g = rnn()
    assert g.recurrent_edges == (("rec", "lif"),)
    assert g.order == ["in", "fc", "lif", "rec", "out"]
    assert g.predecessors("lif") == ["fc", "rec"]  # the recurrent edge is still an edge of the graph


def test_self_loop_on_a_population():
    nodes = {"in": Input((2,)), "fc": Linear(np.eye(2)), "lif": LIF((2,), threshold=1.0), "out": Output((2,))}
    g = Graph(nodes, [("in", "fc"), ("fc", "lif"), ("lif", "lif"), ("lif", "out")])
    assert g.recurrent_edges == (("lif", "lif"),)
    assert g.order == ["in", "fc", "lif", "out"]


def test_a_loop_back_over_two_layers_has_one_recurrent_edge():
    """in -> a -> p1 -> b -> p2 -> c -> p1: the search follows the data, so only the edge back into p1
    closes the cycle (b -> p2 stays a forward edge, as a framework computing layer after layer has it)."""
    eye = np.eye(2)
    nodes = {"in": Input((2,)), "a": Linear(eye), "p1": LIF((2,), threshold=1.0), "b": Linear(eye),
             "p2": LIF((2,), threshold=1.0), "c": Linear(eye), "out": Output((2,))}
    g = Graph(nodes, [("in", "a"), ("a", "p1"), ("p1", "b"), ("b", "p2"), ("p2", "c"), ("c", "p1"), ("p2", "out")])
    assert g.recurrent_edges == (("c", "p1"),)
    assert g.order == ["in", "a", "p1", "b", "p2", "c", "out"]


def test_a_chain_summing_input_and_feedback_is_recurrent_into_the_population():
    """in -> a -> p -> a: the one edge into a population on the cycle is a -> p."""
    nodes = {"in": Input((2,)), "a": Linear(np.eye(2)), "p": LIF((2,), threshold=1.0), "out": Output((2,))}
    g = Graph(nodes, [("in", "a"), ("a", "p"), ("p", "a"), ("p", "out")])
    assert g.recurrent_edges == (("a", "p"),)
    assert g.order == ["in", "p", "a", "out"]


def test_a_cycle_of_stateless_nodes_is_refused_naming_it():
    eye = np.eye(2)
    nodes = {"in": Input((2,)), "a": Linear(eye), "b": Linear(eye), "p": LIF((2,), threshold=1.0),
             "out": Output((2,))}
    with pytest.raises(GraphError) as e:
        Graph(nodes, [("in", "a"), ("a", "b"), ("b", "a"), ("a", "p"), ("p", "out")])
    one_line(e, "a -> b -> a", "stateless nodes only")
    assert e.value.fields["node"] == "a"


def test_an_integrator_may_not_feed_back():
    nodes = {"in": Input((2,)), "a": Linear(np.eye(2)), "li": LI((2,)), "b": Linear(np.eye(2)), "out": Output((2,))}
    with pytest.raises(GraphError) as e:
        Graph(nodes, [("in", "a"), ("a", "li"), ("li", "b"), ("b", "li"), ("li", "out")])
    one_line(e, "'li' (LI)", "cycle", "'b'", "sends nothing")
    assert e.value.fields["node"] == "li"


def test_shapes_are_checked_on_the_recurrent_edge():
    nodes = {"in": Input((2,)), "a": Linear(np.eye(2)), "p": LIF((2,), threshold=1.0), "b": Linear(np.ones((2, 3))),
             "out": Output((2,))}
    with pytest.raises(GraphError) as e:
        Graph(nodes, [("in", "a"), ("a", "p"), ("p", "b"), ("b", "p"), ("p", "out")])
    one_line(e, "'p' -> 'b'", "shape mismatch")


# ----------------------------------------------------------------------------- the torch reference
def hand_rnn(w_in, b_in, w_rec, b_rec, x, steps, *, v_decay, threshold, zero_delay):
    """The one time step written out for in -> fc -> lif <-> rec: a = W_in x + b_in + W_rec s[t-1] + b_rec,
    x of step t-1 (hardware) or t (zero delay), s of step t-1 in both; reset subtract, immediate."""
    batch, n = x.shape[0], w_rec.shape[0]
    v, s, x_prev = np.zeros((batch, n)), np.zeros((batch, n)), np.zeros_like(x[:, 0])
    out = []
    for t in range(steps):
        drive = x[:, t] if zero_delay else x_prev
        a = drive @ w_in.T + b_in + s @ w_rec.T + b_rec
        v = (1 - v_decay) * v + a
        s = (v > threshold).astype(float)
        v = v - threshold * s
        out.append(s)
        x_prev = x[:, t]
    return np.stack(out, axis=1)


@pytest.mark.parametrize("zero_delay", [False, True])
def test_torch_reference_runs_the_recurrence_as_written(zero_delay):
    n_in, n, steps = 3, 6, 30
    w_in, w_rec = RNG.normal(size=(n, n_in)), RNG.normal(size=(n, n)) * 0.8
    b_in, b_rec = RNG.normal(size=n) * 0.1, RNG.normal(size=n) * 0.1
    g = rnn(n_in, n, w_in=w_in, w_rec=w_rec, b_in=b_in, b_rec=b_rec, v_decay=0.1)
    x = RNG.uniform(0, 1.5, size=(5, steps, n_in))
    ours = simulate(g, torch.tensor(x), steps, zero_delay=zero_delay).outputs["out"].numpy()
    theirs = hand_rnn(w_in, b_in, w_rec, b_rec, x, steps, v_decay=0.1, threshold=1.0, zero_delay=zero_delay)
    np.testing.assert_array_equal(ours, theirs)
    # the recurrence matters: the same network without it spikes differently
    no_rec = hand_rnn(w_in, b_in, np.zeros((n, n)), np.zeros(n), x, steps, v_decay=0.1, threshold=1.0,
                      zero_delay=zero_delay)
    assert theirs.sum() > 40 and (theirs != no_rec).sum() > 10


def rleaky_loop(fc, lif, x, steps):
    spk, mem = lif.init_rleaky()
    out = []
    with torch.no_grad():
        for t in range(steps):
            spk, mem = lif(fc(x[:, t]), spk, mem)
            out.append(spk)
    return torch.stack(out, dim=1)


def snntorch_rleaky(n_in, n, beta):
    torch.manual_seed(5)
    fc = torch.nn.Linear(n_in, n)
    lif = snn.RLeaky(beta=torch.full((n,), beta), threshold=torch.ones(n), linear_features=n,
                     reset_mechanism="subtract")
    with torch.no_grad():
        lif.recurrent.weight.mul_(3.0)  # strong enough feedback to change the spikes
    return fc, lif


def test_torch_reference_zero_delay_is_snntorch_rleaky():
    """snnTorch 1.0.0's RLeaky adds ``recurrent(spk)`` of the step before (snntorch/_neurons/rleaky.py:394-398,
    ``_base_state_function``: ``beta * mem + input_ + self.recurrent(self.spk)``, ``self.spk`` being the
    previous call's spikes) and subtracts the threshold one step late (rleaky.py:333, ``mem_reset`` of the
    previous mem): neuromap's recurrent edge in zero-delay mode with reset "subtract", timing "next_step"."""
    n_in, n, steps, beta = 5, 8, 25, 0.85
    fc, lif = snntorch_rleaky(n_in, n, beta)
    x = torch.rand(6, steps, n_in) * 2
    theirs = rleaky_loop(fc, lif, x, steps)
    g = rnn(n_in, n, w_in=fc.weight.detach().double().numpy(), b_in=fc.bias.detach().double().numpy(),
            w_rec=lif.recurrent.weight.detach().double().numpy(), b_rec=lif.recurrent.bias.detach().double().numpy(),
            v_decay=1 - beta, reset="subtract", reset_timing="next_step")
    ours = simulate(g, x.double(), steps, zero_delay=True).outputs["out"]
    assert torch.equal(ours.to(theirs.dtype), theirs) and theirs.sum() > 50
    no_rec = simulate(rnn(n_in, n, w_in=fc.weight.detach().double().numpy(), b_in=fc.bias.detach().double().numpy(),
                          w_rec=np.zeros((n, n)), v_decay=1 - beta, reset="subtract", reset_timing="next_step"),
                      x.double(), steps, zero_delay=True).outputs["out"]
    assert (no_rec.to(theirs.dtype) != theirs).sum() > 10


def test_torch_reference_zero_delay_is_snntorch_rsynaptic():
    """RSynaptic: syn = alpha syn + input + recurrent(spk of the step before), mem = beta mem + syn
    (snntorch/_neurons/rsynaptic.py:418-424, ``_base_state_function``): i_decay = 1 - alpha, v_decay = 1 - beta."""
    n_in, n, steps, alpha, beta = 4, 6, 25, 0.7, 0.9
    torch.manual_seed(6)
    fc = torch.nn.Linear(n_in, n)
    lif = snn.RSynaptic(alpha=torch.full((n,), alpha), beta=torch.full((n,), beta), threshold=torch.ones(n),
                        linear_features=n, reset_mechanism="subtract")
    with torch.no_grad():
        lif.recurrent.weight.mul_(2.0)
    x = torch.rand(6, steps, n_in)
    spk, syn, mem = lif.init_rsynaptic()
    out = []
    with torch.no_grad():
        for t in range(steps):
            spk, syn, mem = lif(fc(x[:, t]), spk, syn, mem)
            out.append(spk)
    theirs = torch.stack(out, dim=1)
    g = rnn(n_in, n, w_in=fc.weight.detach().double().numpy(), b_in=fc.bias.detach().double().numpy(),
            w_rec=lif.recurrent.weight.detach().double().numpy(), b_rec=lif.recurrent.bias.detach().double().numpy(),
            v_decay=1 - beta, i_decay=1 - alpha, reset="subtract", reset_timing="next_step")
    ours = simulate(g, x.double(), steps, zero_delay=True).outputs["out"]
    assert torch.equal(ours.to(theirs.dtype), theirs) and theirs.sum() > 30


# -------------------------------------------------------------------------------------------- NIR
SNNTORCH_DT = 1e-4  # snnTorch's export_to_nir writes tau = dt / (1 - beta) with this dt
SNNTORCH = {"dt": SNNTORCH_DT, "reset": "subtract", "reset_timing": "next_step"}


def snntorch_recurrent_net(n_in=5, n1=8, n2=4):
    """Linear -> RLeaky -> Linear -> RSynaptic, subtract reset (snnTorch's default), random weights."""
    torch.manual_seed(7)
    net = torch.nn.Sequential(
        torch.nn.Linear(n_in, n1),
        snn.RLeaky(beta=torch.full((n1,), 0.85), threshold=torch.ones(n1), linear_features=n1,
                   reset_mechanism="subtract", init_hidden=True),
        torch.nn.Linear(n1, n2),
        snn.RSynaptic(alpha=torch.full((n2,), 0.7), beta=torch.full((n2,), 0.9), threshold=torch.ones(n2),
                      linear_features=n2, reset_mechanism="subtract", init_hidden=True, output=True))
    with torch.no_grad():
        net[0].weight.mul_(2.0)
        net[1].recurrent.weight.mul_(2.0)
    return net


def snntorch_run(net, x, steps):
    for module in net:
        if hasattr(module, "reset_mem"):
            module.reset_mem()
    with torch.no_grad():
        return torch.stack([net(x[:, t])[0] for t in range(steps)], dim=1)


def test_snntorch_recurrent_export_imports_with_its_cycles_and_runs_as_snntorch(tmp_path):
    """snnTorch 1.0's export_to_nir (through nirtorch) writes RLeaky/RSynaptic flat: '1.lif' with its
    recurrent Affine '1.w_rec' and the cycle between them."""
    net = snntorch_recurrent_net()
    path = tmp_path / "rsnn.nir"
    nir.write(path, export_to_nir(net, torch.zeros(1, 5), ignore_dims=[0]))
    graph = read_nir(path, **SNNTORCH)
    assert set(graph.recurrent_edges) == {("1.w_rec", "1.lif"), ("3.w_rec", "3.lif")}
    assert [graph.nodes[n].kind for n in graph.order] == \
        ["Input", "Affine", "LIF", "Affine", "Affine", "LIF", "Affine", "Output"]
    np.testing.assert_array_equal(graph.nodes["1.w_rec"].weight, net[1].recurrent.weight.detach().numpy())
    x = torch.rand(8, 30, 5) * 3
    theirs = snntorch_run(net, x, 30)
    ours = simulate(graph, x.double(), 30, zero_delay=True).outputs["output"]
    assert torch.equal(ours.to(theirs.dtype), theirs) and theirs.sum() > 50


def nested_rleaky_graph(net):
    """The nested form (the NIR paper's ``*_subgraph.nir``): each recurrent layer a NIRGraph with its own
    input/lif/w_rec/output, exactly as snnTorch's per-module conversion writes it (snntorch/export_nir.py:
    147-165 for RLeaky, 197-217 for RSynaptic)."""
    return nir.NIRGraph(
        nodes={"input": nir.Input(np.array([5])), "fc1": _extract_snntorch_module(net[0]),
               "lif1": _extract_snntorch_module(net[1]), "fc2": _extract_snntorch_module(net[2]),
               "lif2": _extract_snntorch_module(net[3]), "output": nir.Output(np.array([4]))},
        edges=[("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "output")],
        type_check=False)


def test_nested_recurrent_subgraphs_are_flattened_with_readable_names(tmp_path):
    net = snntorch_recurrent_net()
    nested = nested_rleaky_graph(net)
    assert isinstance(nested.nodes["lif1"], nir.NIRGraph)
    path = tmp_path / "nested.nir"
    nir.write(path, nested)
    names = ["input", "fc1", "lif1.lif", "lif1.w_rec", "fc2", "lif2.lif", "lif2.w_rec", "output"]
    assert list(from_nir(nested, **SNNTORCH).nodes) == names  # HDF5 lists a file's groups by name
    for graph in (from_nir(nested, **SNNTORCH), read_nir(path, **SNNTORCH)):
        assert sorted(graph.nodes) == sorted(names)
        assert set(graph.edges) == {("input", "fc1"), ("fc1", "lif1.lif"), ("lif1.lif", "lif1.w_rec"),
                                    ("lif1.w_rec", "lif1.lif"), ("lif1.lif", "fc2"), ("fc2", "lif2.lif"),
                                    ("lif2.lif", "lif2.w_rec"), ("lif2.w_rec", "lif2.lif"), ("lif2.lif", "output")}
        assert graph.recurrent_edges == (("lif1.w_rec", "lif1.lif"), ("lif2.w_rec", "lif2.lif"))
        x = torch.rand(6, 25, 5) * 3
        theirs = snntorch_run(net, x, 25)
        ours = simulate(graph, x.double(), 25, zero_delay=True).outputs["output"]
        assert torch.equal(ours.to(theirs.dtype), theirs) and theirs.sum() > 30


def test_an_edge_may_name_a_subgraph_port():
    net = snntorch_recurrent_net()
    nested = nested_rleaky_graph(net)
    nested.edges = [("input", "fc1"), ("fc1", "lif1.input"), ("lif1.output", "fc2"), ("fc2", "lif2"),
                    ("lif2", "output")]
    graph = from_nir(nested, **SNNTORCH)
    assert graph.predecessors("lif1.lif") == ["fc1", "lif1.w_rec"] and graph.successors("lif1.lif") == \
        ["lif1.w_rec", "fc2"]


def test_a_subgraph_with_two_inputs_must_be_named_by_port():
    net = snntorch_recurrent_net()
    nested = nested_rleaky_graph(net)
    sub = nested.nodes["lif1"]
    sub.nodes["input2"] = nir.Input(np.array([8]))
    sub.edges.append(("input2", "lif"))
    with pytest.raises(GraphError) as e:
        from_nir(nested, **SNNTORCH)
    one_line(e, "'lif1'", "2 Input nodes", "'lif1.<Input node>'")


def braille_rsnn(subgraph: bool, rng):
    """The NIR paper's Braille RSNN (neuromorphs/NIR paper/03_rnn: snnTorch RSynaptic 12 -> 38 onto itself,
    Synaptic 38 -> 7; braille_noDelay_noBias_subtract.nir and its ``_subgraph`` twin), random weights."""
    def cuba(n, alpha, beta):
        tau_syn, tau_mem = SNNTORCH_DT / (1 - alpha), SNNTORCH_DT / (1 - beta)
        return nir.CubaLIF(tau_syn=np.full(n, tau_syn), tau_mem=np.full(n, tau_mem),
                           r=np.full(n, tau_mem / SNNTORCH_DT), v_leak=np.zeros(n), v_threshold=np.ones(n),
                           w_in=np.full(n, tau_syn / SNNTORCH_DT), v_reset=np.zeros(n))

    lif, w_rec = cuba(38, 0.8, 0.9), nir.Affine(rng.normal(size=(38, 38)) * 0.3, np.zeros(38))
    nodes = {"input": nir.Input(np.array([12])), "fc1": nir.Affine(rng.normal(size=(38, 12)) * 1.5, np.zeros(38))}
    if subgraph:
        nodes["lif1"] = nir.NIRGraph(nodes={"input": nir.Input(np.array([38])), "lif": lif, "w_rec": w_rec,
                                            "output": nir.Output(np.array([38]))},
                                     edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")],
                                     type_check=False)
        edges = [("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2")]
    else:
        nodes |= {"lif1.lif": lif, "lif1.w_rec": w_rec}
        edges = [("input", "fc1"), ("fc1", "lif1.lif"), ("lif1.lif", "lif1.w_rec"), ("lif1.w_rec", "lif1.lif"),
                 ("lif1.lif", "fc2")]
    nodes |= {"fc2": nir.Affine(rng.normal(size=(7, 38)), np.zeros(7)), "lif2": cuba(7, 0.7, 0.85),
              "output": nir.Output(np.array([7]))}
    return nir.NIRGraph(nodes=nodes, edges=[*edges, ("fc2", "lif2"), ("lif2", "output")], type_check=False)


def test_braille_rsnn_imports_alike_in_both_forms_and_exports_back_flat_with_its_cycle():
    flat = from_nir(braille_rsnn(False, np.random.default_rng(3)), dt=SNNTORCH_DT, reset="subtract",
                    reset_timing="immediate")
    nested = from_nir(braille_rsnn(True, np.random.default_rng(3)), dt=SNNTORCH_DT, reset="subtract",
                      reset_timing="immediate")
    assert list(flat.nodes) == list(nested.nodes) and set(flat.edges) == set(nested.edges)
    assert flat.recurrent_edges == nested.recurrent_edges == (("lif1.w_rec", "lif1.lif"),)
    x = torch.tensor(np.random.default_rng(4).random((4, 40, 12)) < 0.3, dtype=torch.float64)
    runs = [simulate(g, x, 40, zero_delay=zd, record=True) for g in (flat, nested) for zd in (False, True)]
    assert torch.equal(runs[0].spikes["lif1.lif"], runs[2].spikes["lif1.lif"])
    assert torch.equal(runs[1].spikes["lif1.lif"], runs[3].spikes["lif1.lif"])
    assert runs[0].spikes["lif1.lif"].sum() > 100
    exported = to_nir(nested, dt=SNNTORCH_DT)
    assert not any(isinstance(n, nir.NIRGraph) for n in exported.nodes.values())
    assert ("lif1.w_rec", "lif1.lif") in exported.edges and ("lif1.lif", "lif1.w_rec") in exported.edges
    back = from_nir(exported, dt=SNNTORCH_DT)  # reset and its timing travel in the metadata
    assert list(back.nodes) == list(nested.nodes) and back.edges == nested.edges
    assert back.recurrent_edges == nested.recurrent_edges
    assert torch.equal(simulate(back, x, 40, record=True).spikes["lif1.lif"], runs[2].spikes["lif1.lif"])


# ----------------------------------------------------------------------------- compile: passes, Mapping
def dense_weights(rows, cols, rng):
    """Magnitudes in [0.5, 1], random signs: no weight quantizes to 0, so every pair is a synapse (the
    recurrent weights, twice as large, set the population's scale)."""
    return rng.uniform(0.5, 1.0, size=(rows, cols)) * rng.choice([-1.0, 1.0], size=(rows, cols))


def compiled_rnn(n_in, n, target, **kwargs):
    rng = np.random.default_rng(21)
    nodes = {"in": Input((n_in,)), "fc": Linear(dense_weights(n, n_in, rng)),
             "lif": LIF((n,), threshold=4.0, v_decay=0.1), "rec": Linear(2 * dense_weights(n, n, rng)),
             "out": Output((n,))}
    g = Graph(nodes, [("in", "fc"), ("fc", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "out")])
    return g, neuromap.compile(g, target, input_encoding="spikes", **kwargs)


def test_lowering_gives_the_recurrent_projection_onto_its_own_population():
    g, _ = compiled_rnn(3, 5, "loihi2")
    low = lower(g)
    assert low.sources == ("in", "lif") and low.populations == ("lif",)
    assert [(pr.src, pr.dst, pr.paths) for pr in low.projections] == [("in", "lif", (("fc",),)),
                                                                      ("lif", "lif", (("rec",),))]
    np.testing.assert_array_equal(low.projections[1].matrix(g).toarray(), g.nodes["rec"].weight)


def test_recurrent_weights_are_quantized_with_the_population_scale():
    g, m = compiled_rnn(3, 5, "loihi2")
    lam = m.quantized.populations["lif"].scale
    assert np.all(lam == lam[0])
    for pr in m.quantized.projections:
        w = g.nodes[pr.paths[0][0]].weight
        q = pr.integer_matrix(g).toarray() * 2.0 ** pr.weight_exp
        # mixed-sign mantissas are even: within one mantissa step 2 * 2^weight_exp of w * lambda
        assert np.abs(q - w * lam[0]).max() <= 2.0 ** pr.weight_exp, pr.name
    assert {pr.name for pr in m.quantized.projections} == {"fc", "rec"}
    np.testing.assert_allclose(m.quantized.populations["lif"].vth, 4.0 * lam[0] / 2 ** 0, rtol=0.01)


@pytest.fixture
def two_core_chip(tmp_path):
    """testchip (64 neurons per core) with room for synapses and output axons (a recurrent population sends
    every neuron to every slice of itself: testchip's 64 output axons per core cannot hold 100 of them)."""
    body = Path(mappings.load_target("testchip").source).read_text()
    for field, value in (("synaptic_memory_bits", 1 << 20), ("output_axons", 4096)):
        body = re.sub(rf"^{field} = \d+", f"{field} = {value}", body, count=1, flags=re.M)
    path = tmp_path / "roomy.toml"
    path.write_text(body)
    return mappings.load_target(path)


def test_partition_counts_recurrent_synapses_and_axons(two_core_chip):
    """64 neurons per core, so 100 recurrent neurons are cut in two slices. With every weight a
    synapse: slice k holds n_k * (n_in + n) synapses and n_in + n input axons (all inputs, every neuron
    of lif); each lif neuron reaches both cores through 'rec' (2 output axons), and slice j sends n_j
    axons to the other core (traffic 1 per axon without rates)."""
    n_in, n = 3, 100
    _, m = compiled_rnn(n_in, n, two_core_chip)
    sizes = [s.neurons for s in m.partition.slices]
    assert len(sizes) == 2 and sum(sizes) == n
    cores = m.partition.cores
    assert [c.synapses for c in cores] == [k * (n_in + n) for k in sizes]
    assert [c.input_axons for c in cores] == [n_in + n, n_in + n]
    assert [c.output_axons for c in cores] == [2 * k for k in sizes]
    assert m.resources["synapses"] == n * (n_in + n) and m.resources["input_axons_from_inputs"] == 2 * n_in
    cg = m.core_graph
    a, b = (m.partition.slice_core[i] for i in range(2))
    assert cg.edges[a, b]["axons"] == sizes[0] and cg.edges[b, a]["axons"] == sizes[1]
    assert cg.edges[a, a]["axons"] == sizes[0] and cg.edges[b, b]["axons"] == sizes[1]


def test_placement_weighs_recurrent_traffic(two_core_chip):
    """The only traffic between cores is the recurrence: sizes[0] + sizes[1] messages per step, each over
    the hops between the two cores (1 on adjacent tiles, which both placements find)."""
    _, m = compiled_rnn(3, 100, two_core_chip)
    pl = m.placement
    hops = abs(pl.gx[0] - pl.gx[1]) + abs(pl.gy[0] - pl.gy[1])
    assert hops == 1
    assert m.resources["traffic_hops"] == m.resources["traffic_hops_sequential"] == 100.0


def test_mapping_emits_the_recurrent_projection_into_the_quant_network(monkeypatch):
    """hwsim.netdesc's own validation is hwsim's (it refuses recurrence until hwsim steps it); what the
    Mapping hands it is checked here: the recurrent projection onto 'lif' with its integer weights."""
    g, m = compiled_rnn(3, 5, "loihi2")
    handed = {}
    monkeypatch.setattr(compiled.netdesc, "QuantNetwork", lambda *args, **kw: handed.update(args=args, kw=kw))
    m._build_netdesc()
    _, pops, projs, _, outputs = handed["args"]
    assert [p.name for p in pops] == ["lif"] and outputs == ("lif",)
    assert [(p.name, p.src, p.dst) for p in projs] == [("fc", "in", "lif"), ("rec", "lif", "lif")]
    rec = next(p for p in m.quantized.projections if p.name == "rec")
    np.testing.assert_array_equal(projs[1].weights.toarray(), rec.integer_matrix(g).toarray())
    assert projs[1].weight_exp == rec.weight_exp


def test_a_recurrent_mapping_saves_and_loads(tmp_path, two_core_chip):
    _, m = compiled_rnn(3, 100, two_core_chip)
    back = neuromap.Mapping.load(m.save(tmp_path / "rnn.npz"))
    assert back.graph.recurrent_edges == (("rec", "lif"),)
    assert back.resources == m.resources and back.to_bytes() == m.to_bytes()


def test_braille_rsnn_compiles_for_loihi2():
    """The NIR paper's Braille RSNN (subgraph form, no biases) on Loihi 2: one core, the recurrent
    projection among the three, every non-zero integer weight a synapse."""
    graph = from_nir(braille_rsnn(True, np.random.default_rng(3)), dt=SNNTORCH_DT, reset="subtract",
                     reset_timing="immediate")
    m = neuromap.compile(graph, "loihi2", input_encoding="spikes")
    assert [(p.name, p.src, p.dst) for p in m.quantized.projections] == \
        [("fc1", "input", "lif1.lif"), ("lif1.w_rec", "lif1.lif", "lif1.lif"), ("fc2", "lif1.lif", "lif2")]
    r = m.resources
    assert (r["cores"], r["neurons"]) == (1, 38 + 7)
    assert r["synapses"] == sum(p.integer_matrix(graph).count_nonzero() for p in m.quantized.projections)
    # input axons: the 12 inputs, lif1's 38 neurons into itself and into lif2 (one axon per population)
    assert r["per_resource"]["input_axons"]["total"] == 12 + 38 + 38


def test_a_recurrent_population_too_big_for_the_output_axons_says_why():
    """testchip: 64 output axons per core. Each of 100 neurons feeding all 100 reaches every slice of its
    own population, so however it is cut a core sends >= 100 axons: the error says the recurrence is why."""
    with pytest.raises(FitError) as e:
        compiled_rnn(3, 100, "testchip")
    one_line(e, "'testchip'", "64 output axons", "recurrent projection 'rec'", "finer")
    assert e.value.fields["resource"] == "output_axons" and e.value.fields["layer"] == "lif"


# ----------------------------------------------------------------------------- end to end: hwsim, Lava
@pytest.fixture(scope="module")
def braille_mapping():
    graph = from_nir(braille_rsnn(True, np.random.default_rng(3)), dt=SNNTORCH_DT, reset="subtract",
                     reset_timing="immediate")
    x = (np.random.default_rng(4).random((8, 40, 12)) < 0.3).astype(np.float64)
    return graph, neuromap.compile(graph, "loihi2", input_encoding="spikes"), x


def test_braille_rsnn_on_hwsim_follows_the_float_reference(braille_mapping):
    """Quantized to Loihi 2's 8-bit weights, the recurrent network keeps the float reference's spikes
    within the rounding error (>= 98 % of the (sample, step, neuron) spikes equal) and its classes."""
    graph, mapping, x = braille_mapping
    hw = neuromap.run(mapping, x, 40, "hwsim", record=("spikes",))
    ref = neuromap.run(graph, x, 40, "torch", record=("spikes",))
    for pop in ("lif1.lif", "lif2"):
        assert hw.spikes[pop].sum() > 500
        assert (hw.spikes[pop] == ref.spikes[pop]).mean() >= 0.98, pop
    np.testing.assert_array_equal(hw.predictions(), ref.predictions())


@pytest.mark.lava
def test_braille_rsnn_runs_spike_for_spike_alike_on_hwsim_and_lava(braille_mapping):
    _, mapping, x = braille_mapping
    hw = neuromap.run(mapping, x[:2], 40, "hwsim", record=("spikes", "v"))
    lava = neuromap.run(mapping, x[:2], 40, "lava", record=("spikes", "v"))
    for pop in hw.spikes:
        np.testing.assert_array_equal(lava.spikes[pop], hw.spikes[pop], err_msg=pop)
        np.testing.assert_array_equal(lava.v[pop], hw.v[pop], err_msg=pop)


def test_a_recurrent_mapping_runs_from_the_command_line(tmp_path, braille_mapping):
    from click.testing import CliRunner

    from neuromap.cli import main

    _, mapping, x = braille_mapping
    path = mapping.save(tmp_path / "braille.npz")
    np.savez(tmp_path / "seq.npz", x=x, y=np.zeros(len(x), np.int64))
    result = CliRunner().invoke(main, ["run", str(path), "--data", str(tmp_path / "seq.npz"), "--json"])
    assert result.exit_code == 0, result.output
    expected = neuromap.run(mapping, x, 40, "hwsim", record=("spikes",))
    summary = __import__("json").loads(result.output.strip().splitlines()[-1])
    assert summary["steps"] == 40 and summary["samples"] == 8
    assert summary["spikes_total"] == sum(expected.spike_counts().values())


@pytest.mark.lava
def test_snntorchs_default_biased_rleaky_rsynaptic_runs_alike_on_hwsim_and_lava(tmp_path):
    """snnTorch's defaults: every Linear (the recurrent ones too) has a bias, so the RSynaptic layer's
    constant current enters a decaying u through a bias axon; hwsim and Lava agree spike for spike and in u,
    and the quantized network keeps the float reference's spike counts on these weights."""
    net = snntorch_recurrent_net()
    path = tmp_path / "rsnn.nir"
    nir.write(path, export_to_nir(net, torch.zeros(1, 5), ignore_dims=[0]))
    mapping = neuromap.compile(read_nir(path, framework="snntorch"), "loihi2", input_encoding="spikes")
    assert "3.lif.bias_axon" in [p.name for p in mapping.netdesc().projections]
    x = (np.random.default_rng(0).random((2, 30, 5)) < 0.5).astype(np.float64)
    hw = neuromap.run(mapping, x, 30, "hwsim", record=("spikes", "u"))
    lava = neuromap.run(mapping, x, 30, "lava", record=("spikes", "u"))
    ref = neuromap.run(mapping.graph, x, 30, "torch", record=("spikes",))
    for pop in ("1.lif", "3.lif"):
        np.testing.assert_array_equal(lava.spikes[pop], hw.spikes[pop], err_msg=pop)
        np.testing.assert_array_equal(lava.u[pop], hw.u[pop], err_msg=pop)
        assert hw.spikes[pop].sum() > 5
        assert abs(int(hw.spikes[pop].sum()) - int(ref.spikes[pop].sum())) <= 0.05 * ref.spikes[pop].sum(), pop
