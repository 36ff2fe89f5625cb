"""The network-graph IR: validation errors (one line, naming node and problem), exact save/load, malformed files."""
import io
import json
import pathlib
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from neuromap.errors import FormatError, GraphError
from neuromap.ir import (
    IF,
    LI,
    LIF,
    Affine,
    Conv2d,
    Graph,
    Input,
    Linear,
    Output,
    load_graph,
    make_node,
    save_graph,
    sequential,
)
from neuromap.ir.serialize import graph_to_arrays


def chain(neuron=None):
    return sequential([("in", Input((3,))), ("fc", Affine(np.ones((2, 3)), np.zeros(2))),
                       ("n", neuron or LIF((2,), threshold=1.0)), ("out", Output((2,)))])


def one_line(exc_info, *fragments):
    text = str(exc_info.value)
    assert "\n" not in text
    for fragment in fragments:
        assert fragment in text, (fragment, text)


# ------------------------------------------------------------------------------------- validation
def test_dangling_edge():
    nodes = chain().nodes
    with pytest.raises(GraphError) as e:
        Graph(nodes, [("in", "fc"), ("fc", "n"), ("n", "out"), ("n", "ghost")])
    one_line(e, "'ghost'", "does not exist")


def test_cycle():
    # a cycle through a population is a recurrent connection (tests/test_recurrent.py); one of stateless
    # nodes only has no state to carry it from step to step
    nodes = {"in": Input((2,)), "a": Linear(np.eye(2)), "n": LIF((2,), threshold=1.0), "b": Linear(np.eye(2)),
             "out": Output((2,))}
    with pytest.raises(GraphError) as e:
        Graph(nodes, [("in", "a"), ("a", "b"), ("b", "a"), ("a", "n"), ("n", "out")])
    one_line(e, "cycle", "a -> b -> a", "stateless")


def test_shape_mismatch():
    nodes = {"in": Input((3,)), "fc": Linear(np.ones((2, 4))), "n": LI((2,)), "out": Output((2,))}
    with pytest.raises(GraphError) as e:
        Graph(nodes, [("in", "fc"), ("fc", "n"), ("n", "out")])
    one_line(e, "'in' -> 'fc'", "shape mismatch", "(3,)", "(4,)")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_parameter(bad):
    weight = np.ones((2, 3))
    weight[1, 2] = bad
    with pytest.raises(GraphError) as e:
        make_node("fc1", Affine, weight=weight, bias=np.zeros(2))
    one_line(e, "'fc1'", "Affine.weight", "non-finite", "(1, 2)")


@pytest.mark.parametrize("threshold", [0.0, -1.0, [1.0, 0.0]])
def test_bad_threshold(threshold):
    with pytest.raises(GraphError) as e:
        make_node("hidden", LIF, shape=(2,), threshold=threshold)
    one_line(e, "'hidden'", "threshold", "> 0")


def test_unknown_reset_and_timing():
    with pytest.raises(GraphError) as e:
        make_node("hidden", IF, shape=(2,), threshold=1.0, reset="soft")
    one_line(e, "'hidden'", "reset", "'soft'", "subtract")
    with pytest.raises(GraphError) as e:
        make_node("hidden", LIF, shape=(2,), threshold=1.0, reset_timing="later")
    one_line(e, "'hidden'", "reset_timing", "'later'", "next_step")


def test_decay_out_of_range_and_parameter_shape():
    with pytest.raises(GraphError) as e:
        make_node("hidden", LIF, shape=(2,), threshold=1.0, v_decay=1.5)
    one_line(e, "'hidden'", "v_decay", "[0.0, 1.0]")
    with pytest.raises(GraphError) as e:
        make_node("hidden", LIF, shape=(2,), threshold=np.ones(3))
    one_line(e, "'hidden'", "threshold", "does not broadcast")


def test_if_must_not_leak():
    with pytest.raises(GraphError) as e:
        make_node("hidden", IF, shape=(2,), threshold=1.0, v_decay=0.1)
    one_line(e, "'hidden'", "IF", "v_decay")


def test_missing_input_output_and_unreachable():
    with pytest.raises(GraphError, match="no Output"):
        Graph({"in": Input((2,)), "n": LI((2,))}, [("in", "n")])
    nodes = {"in": Input((2,)), "n": LI((2,)), "lost": LI((2,)), "out": Output((2,))}
    with pytest.raises(GraphError) as e:
        Graph(nodes, [("in", "n"), ("n", "out")])
    one_line(e, "'lost'", "no incoming edge")


# ------------------------------------------------------------------------------------- save / load
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_save_load_round_trip_is_exact(tmp_path_factory, graph_strategy, same_graph, data):
    graph = data.draw(graph_strategy)
    path = save_graph(graph, tmp_path_factory.mktemp("g") / "net.npz")
    same_graph(graph, load_graph(path))


def test_save_load_keeps_scalar_parameters_scalar(tmp_path, same_graph):
    graph = chain(LIF((2,), threshold=0.5, v_decay=np.array([0.1, 0.2]), reset="zero", reset_timing="next_step"))
    loaded = load_graph(save_graph(graph, tmp_path / "g.npz"))
    same_graph(graph, loaded)
    assert loaded.nodes["n"].threshold.shape == ()


def test_saving_non_json_metadata_is_refused(tmp_path):
    graph = Graph(chain().nodes, chain().edges, {"model": object()})
    with pytest.raises(FormatError, match="graph metadata"):
        save_graph(graph, tmp_path / "g.npz")


# ------------------------------------------------------------------------------------- malformed files
def write_arrays(path, arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # np.savez pickles object arrays: the attack file
    path.write_bytes(buf.getvalue())
    return path


def header_of(graph):
    arrays = graph_to_arrays(graph)
    return arrays, json.loads(str(arrays["__graph__"][()]))


def with_header(arrays, header):
    return {**arrays, "__graph__": np.array(json.dumps(header))}


def test_not_an_npz_file(tmp_path):
    path = tmp_path / "net.npz"
    path.write_text("layer fc1: 64 -> 32\n")
    with pytest.raises(FormatError) as e:
        load_graph(path)
    one_line(e, "not a readable .npz")


def test_missing_file(tmp_path):
    with pytest.raises(FormatError, match="no such file"):
        load_graph(tmp_path / "nothing.npz")


def test_missing_header(tmp_path):
    path = write_arrays(tmp_path / "net.npz", {"fc/weight": np.ones((2, 3))})
    with pytest.raises(FormatError) as e:
        load_graph(path)
    one_line(e, "no '__graph__' header")


def test_header_not_json_and_wrong_format(tmp_path):
    arrays, header = header_of(chain())
    path = write_arrays(tmp_path / "a.npz", {**arrays, "__graph__": np.array("{nodes: [")})
    with pytest.raises(FormatError, match="not valid JSON"):
        load_graph(path)
    path = write_arrays(tmp_path / "b.npz", with_header(arrays, {**header, "format": "other-tool"}))
    with pytest.raises(FormatError, match="'other-tool'"):
        load_graph(path)


def test_wrong_version(tmp_path):
    arrays, header = header_of(chain())
    path = write_arrays(tmp_path / "net.npz", with_header(arrays, {**header, "version": 99}))
    with pytest.raises(FormatError) as e:
        load_graph(path)
    one_line(e, "version 99", "not supported")


def test_unknown_kind(tmp_path):
    arrays, header = header_of(chain())
    header["nodes"][2]["kind"] = "Izhikevich"
    path = write_arrays(tmp_path / "net.npz", with_header(arrays, header))
    with pytest.raises(FormatError) as e:
        load_graph(path)
    one_line(e, "'n'", "unknown kind 'Izhikevich'", "LIF")


def test_missing_array(tmp_path):
    arrays, _header = header_of(chain())
    del arrays["fc/weight"]
    path = write_arrays(tmp_path / "net.npz", arrays)
    with pytest.raises(FormatError) as e:
        load_graph(path)
    one_line(e, "'fc'", "'weight'", "missing")


def test_missing_header_field(tmp_path):
    arrays, header = header_of(chain())
    del header["edges"]
    path = write_arrays(tmp_path / "net.npz", with_header(arrays, header))
    with pytest.raises(FormatError) as e:
        load_graph(path)
    one_line(e, "missing or has a malformed field", "edges")


def test_bad_values_in_file_name_the_node(tmp_path):
    arrays, _header = header_of(chain())
    arrays["n/threshold"] = np.array(np.nan)
    path = write_arrays(tmp_path / "net.npz", arrays)
    with pytest.raises(FormatError) as e:
        load_graph(path)
    one_line(e, "'n'", "threshold", "non-finite")


class Payload:
    """Unpickling it creates a file: the proof that code from the file ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def test_pickled_object_array_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    arrays, _ = header_of(chain())
    arrays["fc/weight"] = np.array([Payload(marker)], dtype=object)
    path = write_arrays(tmp_path / "net.npz", arrays)
    with zipfile.ZipFile(path) as z:  # the object array really is in the file, as a pickle
        assert "fc/weight.npy" in z.namelist()
    with pytest.raises(FormatError) as e:
        load_graph(path)
    one_line(e, "not a readable .npz", "allow_pickle")
    assert not marker.exists()
    np.load(path, allow_pickle=True)["fc/weight"]  # the payload works when unpickled
    assert marker.exists()


def conv_chain():
    return sequential([("in", Input((1, 3, 3))), ("c", Conv2d((1, 3, 3), np.ones((1, 1, 1, 1)), np.zeros(1))),
                       ("n", LI((1, 3, 3))), ("out", Output((1, 3, 3)))])


@pytest.mark.parametrize("mutate, fragments", [
    (lambda h: h.__setitem__("edges", [["in", "c", "n"]]), ["['in', 'c', 'n']", "not a [source, target] pair"]),
    (lambda h: h["nodes"][1]["fields"].__setitem__("stride", ["x", 1]), ["'c'", "Conv2d.stride"]),
    (lambda h: h["nodes"][1]["fields"].__setitem__("groups", "two"), ["'c'", "Conv2d.groups"]),
    (lambda h: h["nodes"][1]["fields"].__setitem__("colour", "red"), ["malformed field", "colour"]),
])
def test_malformed_fields_in_file(tmp_path, mutate, fragments):
    arrays, header = header_of(conv_chain())
    mutate(header)
    path = write_arrays(tmp_path / "net.npz", with_header(arrays, header))
    with pytest.raises(FormatError) as e:
        load_graph(path)
    one_line(e, *fragments)
