"""Seams of the compiler: partition counts the quantized weights with the target's synapse-memory model,
the compiler imports no simulator, and the Mapping codec reads files written before these changes."""
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mappings
import neuromap
from neuromap.errors import FormatError
from neuromap.ir import IF, Affine, Conv2d, Input, Output, sequential
from neuromap.mapping import Mapping
from neuromap.passes import synapse_memory
from neuromap.passes.lower import lower

# several nets here round weights to 0 on purpose
pytestmark = pytest.mark.filterwarnings("ignore:.*weights lose precision")

def _one_neuron(weights):
    n = len(weights)
    return sequential([("in", Input(shape=(n,))), ("fc", Affine(weight=np.array([weights]), bias=np.zeros(1))),
                       ("if", IF(shape=(1,), threshold=1.0)), ("out", Output(shape=(1,)))])


def _conv(weight):
    cout, cin = weight.shape[:2]
    return sequential([("in", Input(shape=(cin, 6, 6))),
                       ("conv", Conv2d(input_shape_chw=(cin, 6, 6), weight=weight, bias=np.zeros(cout), padding=1)),
                       ("if", IF(shape=(cout, 6, 6), threshold=1.0)), ("out", Output(shape=(cout, 6, 6)))])


def _clear_of_zero_kernel(seed=0):
    rng = np.random.default_rng(seed)
    return rng.choice([-1.0, 1.0], (3, 2, 3, 3)) * rng.uniform(0.5, 1.0, (3, 2, 3, 3))


# ---------------------------------------------------------------------------------------------- quantized counts
def test_a_weight_that_rounds_to_zero_costs_no_synapse_memory_or_axon():
    m = neuromap.compile(_one_neuron([1.0, 0.5, 0.001]), "testchip", input_encoding="spikes")
    hw = m.netdesc().projections[0].weights.toarray()
    assert hw[0, 2] == 0 and np.count_nonzero(hw) == 2  # 0.001 of a full-scale 1.0: below half a step of 8 bits
    assert m.resources["synapses"] == 2
    assert m.resources["input_axons_from_inputs"] == 2
    core = m.partition.cores[0]
    assert (core.synapses, core.input_axons) == (2, 2)
    # by hand: two input axons, each a one-entry list: 8 weight bits + 10 header bits fill one 64-bit word
    assert core.synaptic_memory_bits == 2 * 64


@pytest.mark.parametrize("target, encoding", [("testchip", "graded"), ("loihi1", "spikes")])
@pytest.mark.parametrize("zero_pair", [False, True])
def test_conv_counts_are_the_synapses_hwsim_runs(target, encoding, zero_pair):
    """Slice by slice, synapses are the non-zero integer weights hwsim runs, and, without shared kernels
    (loihi1), input axons are the source neurons with one; with nothing rounding to 0 they are the float
    counts. A (destination, source) channel pair whose kernel rounds to 0 everywhere is no connection."""
    weight = _clear_of_zero_kernel()
    if zero_pair:
        weight[1, 0] = 1e-4
    graph = _conv(weight)
    m = neuromap.compile(graph, target, input_encoding=encoding)
    integer = m.netdesc().projections[0].weights
    float_matrix = lower(graph).projections[0].matrix(graph)
    assert (integer.nnz == float_matrix.nnz) == (not zero_pair)
    assert m.resources["synapses"] == integer.nnz
    for s in m.partition.slices:
        rows = integer[s.flat_indices((3, 6, 6))]
        assert s.synapses == rows.nnz
        if not mappings.load_target(target).synapses.shared_conv_weights:
            assert s.input_axons == len(np.unique(rows.indices))


def test_a_chain_of_two_convolutions_counts_the_channel_pairs_of_its_integer_matrix():
    """Two convolutions with no population between are quantized as one integer matrix: a source channel
    whose every weight rounds to 0 there feeds nothing (loihi1: discrete axons, one slice)."""
    rng = np.random.default_rng(1)
    a = rng.uniform(0.5, 1.0, (3, 2, 3, 3))
    a[:, 0] = 1e-4
    graph = sequential([("in", Input(shape=(2, 6, 6))),
                        ("a", Conv2d(input_shape_chw=(2, 6, 6), weight=a, bias=np.zeros(3), padding=1)),
                        ("b", Conv2d(input_shape_chw=(3, 6, 6), weight=rng.uniform(0.5, 1.0, (2, 3, 3, 3)),
                                     bias=np.zeros(2), padding=1)),
                        ("if", IF(shape=(2, 6, 6), threshold=1.0)), ("out", Output(shape=(2, 6, 6)))])
    m = neuromap.compile(graph, "loihi1", input_encoding="spikes")
    integer = m.netdesc().projections[0].weights
    assert m.quantized.projections[0].matrix is not None  # the matrix form, not one node's kernel
    assert integer[:, :36].nnz == 0 < integer.nnz
    assert m.resources["synapses"] == integer.nnz
    assert m.partition.slices[0].input_axons == len(np.unique(integer.indices)) == 36


def test_the_mlp_benchmark_keeps_its_cores_and_its_synapses_are_what_hwsim_runs():
    """benchmarks/compile.py's MLP: cores, bound and placement as before counting quantized weights;
    28,966 of its 1,794,000 float weights round to 0 and are no synapses."""
    sys.path.insert(0, "benchmarks")
    try:
        from compile import mlp
    finally:
        sys.path.remove("benchmarks")
    m = neuromap.compile(mlp(0), "loihi2", seed=0)
    r = m.resources
    assert (r["cores"], r["lower_bound_cores"], r["binding_constraint"]) == (17, 16, "synaptic_memory_bits")
    assert (r["traffic_hops_sequential"], r["traffic_hops"]) == (21528.0, 10134.0)
    rounded = sum(p["rounded_to_zero"] for layer in m.quantization_report for p in layer["projections"])
    assert r["synapses"] == sum(p.weights.nnz for p in m.netdesc().projections) == 1_794_000 - rounded
    assert rounded == 28_966


# ---------------------------------------------------------------------------------------------- memory model
def test_loihi_blocks_by_hand():
    model = synapse_memory.memory_model(mappings.load_target("testchip"))
    # a 64-entry block of 8-bit weights with a 10-bit header is 522 bits: 9 words of 64, a 63-entry one
    # 514 bits (9 words, 8 without its header), a lone entry one word
    assert model.list_bits(np.array([0, 1, 63, 64, 65]), 8).tolist() == [0, 64, 576, 576, 640]
    dense = model.lists(neurons=64, synapses=64, axons=1, counts=np.array([64]), mults=np.array([1]))
    assert (dense.encoding, dense.memory_bits) == ("dense", 576)  # sparse entries add 6 index bits: 14 words
    assert model.shared(9, 4, 18).memory_bits == 3 * 64 + 4 * 64  # 18 x 8 bits in 3 words, 4 pointer words
    assert synapse_memory.memory_model(mappings.load_target("loihi1")).shared(9, 4, 18) is None


def test_every_model_a_target_may_name_is_implemented():
    assert set(synapse_memory.MODELS) == set(mappings.SYNAPSE_MEMORY_MODELS)


def _target_with_model(tmp_path, name):
    body = Path(mappings.load_target("testchip").source).read_text()
    path = tmp_path / "chip.toml"
    path.write_text(body.replace('memory_model = "loihi_blocks"', f'memory_model = "{name}"'))
    return path


def test_an_unknown_memory_model_fails_on_load_naming_the_field(tmp_path):
    with pytest.raises(mappings.TargetError, match=r"\[synapses\] memory_model: must be one of loihi_blocks"):
        mappings.load_target(_target_with_model(tmp_path, "hbm_rows"))


def test_partition_uses_the_model_the_target_names(tmp_path, monkeypatch):
    """A one-bit-per-synapse model, registered under a new name: every core's memory is its synapse count."""
    class OneBit:
        def lists(self, neurons, synapses, axons, counts, mults):
            return synapse_memory.Usage(synapses, axons, synapses, "sparse")

        def shared(self, synapses, positions, kernel_weights):
            return None

    monkeypatch.setattr(mappings.target, "SYNAPSE_MEMORY_MODELS", ("loihi_blocks", "one_bit"))
    monkeypatch.setitem(synapse_memory.MODELS, "one_bit", lambda target: OneBit())
    graph = _one_neuron([1.0, 0.5, 0.001, -0.7])
    m = neuromap.compile(graph, mappings.load_target(_target_with_model(tmp_path, "one_bit")),
                         input_encoding="spikes")
    assert [c.synaptic_memory_bits for c in m.partition.cores] == [3]


# ---------------------------------------------------------------------------------------------- seams
def test_the_compiler_imports_no_simulator():
    code = ("import sys, neuromap.mapping; "
            "print(sorted(m for m in sys.modules if m.startswith(('neuromap.backends', 'neuromap.calibrate', "
            "'hwsim.sim', 'hwsim.gpu'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def _rewrite_header(data: bytes, change) -> bytes:
    with np.load(io.BytesIO(data)) as f:
        arrays = {k: f[k] for k in f.files}
    header = json.loads(str(arrays["__mapping__"][()]))
    change(header)
    arrays["__mapping__"] = np.array(json.dumps(header, sort_keys=True))
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def test_a_mapping_file_written_before_targets_named_a_memory_model_loads(tmp_path):
    m = neuromap.compile(_one_neuron([1.0, 0.5, 0.001]), "testchip", input_encoding="spikes")
    old = tmp_path / "old.npz"
    old.write_bytes(_rewrite_header(m.to_bytes(), lambda h: h["target"]["synapses"].pop("memory_model")))
    loaded = Mapping.load(old)
    assert loaded.target == m.target and loaded.to_bytes() == m.to_bytes()


def test_a_mapping_file_of_another_version_is_refused_in_one_line(tmp_path):
    m = neuromap.compile(_one_neuron([1.0, 0.5]), "testchip", input_encoding="spikes")
    path = tmp_path / "v3.npz"  # version 2 added bias axons (mapping/codec.py): 1 and 2 are read
    path.write_bytes(_rewrite_header(m.to_bytes(), lambda h: h.update(version=3)))
    with pytest.raises(FormatError,
                       match=r"mapping format version 3 is not supported \(this neuromap reads version 1, 2\)$"):
        Mapping.load(path)
