"""Embedded data sets, user .npz files and spike encoders."""
import numpy as np
import pytest
import torch
from datafiles import EVENT_DTYPE, events, tonic_folder

from neuromap import data
from neuromap.errors import FormatError, NeuromapError


def test_digits_split_is_fixed_and_scaled():
    d = data.load("digits")
    assert d.x_train.shape == (1437, 1, 8, 8) and d.x_test.shape == (360, 1, 8, 8)
    assert d.x_train.min() >= 0.0 and d.x_train.max() <= 1.0
    assert d.num_classes == 10
    assert np.array_equal(d.y_test, data._split("digits", *_raw_digits()).y_test)


def _raw_digits():
    from sklearn.datasets import load_digits

    raw = load_digits()
    return (raw.images / 16.0).reshape(-1, 1, 8, 8), raw.target


def test_mnist5k_is_embedded():
    d = data.load("mnist5k")
    assert d.x_train.shape == (4000, 1, 28, 28) and d.x_test.shape == (1000, 1, 28, 28)
    assert set(np.unique(d.y_test)) == set(range(10))
    assert d.flat().x_test.shape == (1000, 784)


def test_npz_user_data(tmp_path):
    path = tmp_path / "mine.npz"
    np.savez(path, x=np.random.rand(50, 3), y=np.arange(50) % 5)
    d = data.load(str(path))
    assert d.x_train.shape == (40, 3) and d.num_classes == 5


@pytest.mark.parametrize("content, message", [
    (dict(x=np.ones((4, 2))), "missing array 'y'"),
    (dict(x=np.ones((4, 2)), y=np.ones(3, dtype=int)), "'x' must be"),
    (dict(x=np.full((4, 2), np.nan), y=np.zeros(4, dtype=int)), "NaN"),
    (dict(x=np.ones((4, 2)), y=np.ones(4)), "integer labels"),
    (dict(x=np.array([{"a": 1}] * 4, dtype=object), y=np.zeros(4, dtype=int)), "not a readable"),
])
def test_bad_npz_is_one_line_error(tmp_path, content, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **content)
    with pytest.raises(FormatError, match=message):
        data.load_npz(path)


def test_not_npz_and_unknown_name(tmp_path):
    bad = tmp_path / "x.npz"
    bad.write_text("hello")
    with pytest.raises(FormatError, match="not a readable"):
        data.load(str(bad))
    with pytest.raises(NeuromapError, match="unknown data set 'cifar'"):
        data.load("cifar")


def test_encoders():
    x = torch.tensor([[0.0, 0.5, 1.0, -1.0]])
    assert torch.equal(data.direct_encode(x, 3)[0, 2], x[0])
    spikes = data.poisson_encode(x.repeat(2000, 1), 4, seed=1)
    rates = spikes.mean(dim=(0, 1))
    assert rates[0] == 0 and rates[2] == 1 and rates[3] == -1
    assert abs(rates[1].item() - 0.5) < 0.02
    assert torch.equal(spikes, data.poisson_encode(x.repeat(2000, 1), 4, seed=1))
    with pytest.raises(NeuromapError, match="must lie in"):
        data.poisson_encode(torch.tensor([[2.0]]), 3)


# ---------------------------------------------------------------------------------------------- sequences
def _delay_line(tmp_path, size=3):
    """Input -> identity Affine -> IF (threshold 0.5, reset to zero) -> Output: with 0/1 inputs its spikes at
    step t are exactly the input of step t - 1 (the projection's one-step delay, docs/architecture.md)."""
    from neuromap.ir import IF, Affine, Input, Output, save_graph, sequential

    graph = sequential([("in", Input((size,))), ("fc", Affine(np.eye(size), np.zeros(size))),
                        ("if", IF((size,), threshold=0.5, reset="zero")), ("out", Output((size,)))])
    return str(save_graph(graph, tmp_path / "delay.npz"))


def _cli(*args):
    from click.testing import CliRunner

    from neuromap.cli import main

    return CliRunner().invoke(main, list(args))


@pytest.mark.parametrize("backend", ["torch", "hwsim"])
def test_a_sequence_is_presented_one_frame_per_step(tmp_path, backend):
    rng = np.random.default_rng(3)
    x = (rng.random((4, 7, 3)) < 0.5).astype(np.float32)
    data_file = tmp_path / "seq.npz"
    np.savez(data_file, x=x, y=np.arange(4) % 3)
    model = _delay_line(tmp_path)
    expected = np.concatenate([np.zeros((4, 1, 3)), x[:, :-1]], axis=1)  # s[t] = x[t - 1], s[1] = 0
    for steps in ([], ["--steps", "4"]):
        saved = tmp_path / f"spikes{len(steps)}.npz"
        res = _cli("run", model, "--backend", backend, "--data", str(data_file), *steps, "--save-spikes", str(saved))
        assert res.exit_code == 0, res.output
        t = 7 if not steps else 4  # a sequence runs its own T unless --steps asks for fewer
        assert f"on 4 sequences (all split of seq) x {t} steps" in res.output
        with np.load(saved) as f:
            assert np.array_equal(f["if"], expected[:, :t])


def test_encode_inputs_and_validate_inputs_pass_a_sequence_through():
    import hwsim.sim
    import neuromap
    from neuromap.ir import IF, LI, Affine, Input, Output, sequential
    from neuromap.mapping import compile as compile_graph

    rng = np.random.default_rng(4)
    graph = sequential([("in", Input((6,))), ("fc", Affine(rng.normal(0, 0.8, (5, 6)), np.zeros(5))),
                        ("if", IF((5,), threshold=0.6)), ("fc2", Affine(rng.normal(0, 0.8, (3, 5)), np.zeros(3))),
                        ("li", LI((3,))), ("out", Output((3,)))])
    mapping = compile_graph(graph, "loihi2")
    seq = rng.random((2, 9, 6))
    encoded = mapping.encode_inputs(seq)["in"]
    assert encoded.shape == (2, 9, 6)
    for t in range(9):  # frame by frame, as the same frame held would be encoded
        assert np.array_equal(encoded[:, t], mapping.encode_inputs(seq[:, t])["in"])
    result = neuromap.run(mapping, seq, 9, backend="hwsim", record=("spikes",))
    direct = hwsim.sim.simulate(mapping.netdesc(), {"in": encoded}, 9, record=("spikes",))
    assert np.array_equal(result.spikes["if"].reshape(2, 9, -1), direct.spikes["if"])
    assert direct.spikes["if"].sum() > 0


# ---------------------------------------------------------------------------------------------- split
def test_split_all_is_the_default_for_a_users_file_and_test_is_the_training_split(tmp_path):
    path = tmp_path / "mine.npz"
    x, y = np.random.default_rng(0).random((50, 3)), np.arange(50) % 3
    np.savez(path, x=x, y=y)
    every = data.samples(str(path), input_shape=(3,), outputs=5, default_steps=8)
    assert every.split == "all" and np.array_equal(every.x, x.astype(np.float32)) and np.array_equal(every.y, y)
    test = data.samples(str(path), input_shape=(3,), outputs=5, split="test", default_steps=8, limit=6)
    held_out = data.load_npz(path)  # what `neuromap train` holds out
    assert test.split == "test" and np.array_equal(test.y, held_out.y_test[:6])
    assert np.array_equal(test.x, held_out.x_test[:6]) and test.steps == 8
    digits = data.samples("digits", input_shape=(64,), outputs=10, default_steps=8)
    assert digits.split == "test" and len(digits.y) == 360
    assert len(data.samples("digits", input_shape=(64,), outputs=10, split="all", default_steps=8).y) == 1797
    res = _cli("run", _delay_line(tmp_path), "--data", str(path), "--backend", "torch", "--split", "test")
    assert res.exit_code == 0 and "on 10 samples (test split of mine) x 32 steps" in res.output, res.output


# ---------------------------------------------------------------------------------------------- events
@pytest.mark.parametrize("two_d", [True, False])
def test_event_binning_is_tonics_time_windows_over_the_whole_sample(two_d):
    from tonic.functional import to_frame_numpy

    rng = np.random.default_rng(5)
    steps, span, t0 = 4, 100, 10
    if two_d:
        sensor, dtype = (5, 3, 2), EVENT_DTYPE
    else:
        sensor, dtype = (7, 1, 1), np.dtype([("t", np.int64), ("x", np.int64), ("p", np.int64)])
    ev = events(rng, 300, sensor, t0, span, dtype)
    # tonic's fixed time windows of span/steps from the first event reproduce the binning exactly
    reference = to_frame_numpy(ev.copy(), sensor, time_window=span // steps, start_time=t0, end_time=t0 + span)
    frames = data.events.bin_events(ev, sensor, steps)
    assert frames.shape == reference.shape == ((steps, 2, 3, 5) if two_d else (steps, 1, 7))
    assert np.array_equal(frames, reference) and frames.sum() == len(ev)


def test_event_binning_by_hand():
    ev = np.zeros(4, dtype=EVENT_DTYPE)
    ev["x"], ev["y"], ev["p"], ev["t"] = [0, 1, 1, 0], [0, 0, 1, 0], [0, 1, 1, 0], [1000, 1001, 1002, 1003]
    frames = data.events.bin_events(ev, (2, 2, 2), 2)   # span 4 us: steps [1000, 1002), [1002, 1004)
    expected = np.zeros((2, 2, 2, 2))
    expected[0, 0, 0, 0] = 1            # t 1000: p 0, y 0, x 0
    expected[0, 1, 0, 1] = 1            # t 1001: p 1, y 0, x 1
    expected[1, 1, 1, 1] = 1            # t 1002: p 1, y 1, x 1
    expected[1, 0, 0, 0] = 1            # t 1003
    assert np.array_equal(frames, expected)


def test_an_event_file_is_binned_into_steps_frames(tmp_path):
    rng = np.random.default_rng(6)
    sensor = (4, 3, 2)
    evs = [events(rng, k, sensor, 0, 50) for k in (5, 9, 2)]
    path = tmp_path / "events.npz"
    np.savez(path, events=np.concatenate(evs), offsets=np.cumsum([0, *map(len, evs)]), sensor_size=np.array(sensor),
             y=np.array([0, 1, 1]))
    got = data.samples(str(path), input_shape=(24,), outputs=2, default_steps=5)
    assert got.sequence and got.steps == 5 and got.x.shape == (3, 5, 24)
    for i, ev in enumerate(evs):
        assert np.array_equal(got.x[i], data.events.bin_events(ev, sensor, 5).reshape(5, 24))
    assert data.samples(str(path), input_shape=(2, 3, 4), outputs=2, steps=3).x.shape == (3, 3, 2, 3, 4)


# ---------------------------------------------------------------------------------------------- tonic sets
@pytest.fixture
def no_downloads(monkeypatch):
    """Any attempt of tonic to download fails the test loudly (not as a neuromap error)."""
    import tonic.dataset

    def refuse(*args, **kwargs):
        raise AssertionError("tonic tried to download")

    monkeypatch.setattr(tonic.dataset, "download_and_extract_archive", refuse)


SHAPES = {"nmnist": (2, 34, 34), "dvsgesture": (2, 128, 128), "shd": (700,)}


@pytest.mark.parametrize("kind", ["nmnist", "dvsgesture", "shd"])
def test_a_tonic_folder_is_read_with_tonic_and_never_downloaded(kind, tmp_path, no_downloads):
    events, labels = tonic_folder(kind, tmp_path, np.random.default_rng(7))
    got = data.samples(f"{kind}:{tmp_path}", input_shape=SHAPES[kind], outputs=11, default_steps=6)
    assert got.split == "test" and got.sequence and got.steps == 6 and np.array_equal(got.y, labels)
    sensor = {"nmnist": (34, 34, 2), "dvsgesture": (128, 128, 2), "shd": (700, 1, 1)}[kind]
    for i, ev in enumerate(events):
        assert np.array_equal(got.x[i].reshape(6, -1), data.events.bin_events(ev, sensor, 6).reshape(6, -1)), i
    both = data.samples(f"{kind}:{tmp_path}", input_shape=SHAPES[kind], outputs=11, split="all", default_steps=2)
    assert both.split == "all" and len(both.y) == 6
    spread = data.samples(f"{kind}:{tmp_path}", input_shape=SHAPES[kind], outputs=11, split="all", default_steps=2,
                          limit=2)
    assert np.array_equal(spread.x, both.x[[0, 5]])  # spread over the split: its first and last sample


def test_neuromap_run_on_an_nmnist_folder(tmp_path, no_downloads):
    from neuromap.ir import IF, Affine, Flatten, Input, Output, save_graph, sequential

    tonic_folder("nmnist", tmp_path / "data", np.random.default_rng(8))
    rng = np.random.default_rng(9)
    graph = sequential([("in", Input((2, 34, 34))), ("flat", Flatten((2, 34, 34))),
                        ("fc", Affine(rng.normal(0, 1, (10, 2312)), np.zeros(10))),
                        ("if", IF((10,), threshold=0.5)), ("out", Output((10,)))])
    model = save_graph(graph, tmp_path / "net.npz")
    res = _cli("run", str(model), "--backend", "torch", "--data", f"nmnist:{tmp_path / 'data'}", "--steps", "8")
    assert res.exit_code == 0, res.output
    assert f"on 3 sequences (test split of nmnist:{tmp_path / 'data'}) x 8 steps" in res.output


def test_encode_inputs_names_an_input_without_data():
    from neuromap.errors import UnsupportedError
    from neuromap.ir import IF, Affine, Input, Output, sequential
    from neuromap.mapping import compile as compile_graph

    graph = sequential([("in", Input((2,))), ("fc", Affine(np.eye(2), np.zeros(2))), ("if", IF((2,), threshold=0.5)),
                        ("out", Output((2,)))])
    with pytest.raises(UnsupportedError, match="no data for input 'in'"):
        compile_graph(graph, "loihi2").encode_inputs({"other": np.zeros((1, 2))})


def test_estimate_runs_a_sequence_as_run_does(tmp_path):
    import json

    from neuromap.ir import IF, LI, Affine, Input, Output, save_graph, sequential

    rng = np.random.default_rng(10)
    graph = sequential([("in", Input((6,))), ("fc", Affine(rng.normal(0, 0.8, (12, 6)), np.zeros(12))),
                        ("if", IF((12,), threshold=0.6)), ("fc2", Affine(rng.normal(0, 0.8, (4, 12)), np.zeros(4))),
                        ("li", LI((4,))), ("out", Output((4,)))])
    model = str(save_graph(graph, tmp_path / "net.npz"))
    path = tmp_path / "seq.npz"
    np.savez(path, x=rng.random((40, 9, 6)), y=np.arange(40) % 4)
    ran = _cli("run", model, "--data", str(path), "--backend", "hwsim", "--json")
    estimated = _cli("estimate", model, "--data", str(path), "--json")
    assert ran.exit_code == 0 and estimated.exit_code == 0, ran.output + estimated.output
    ran, estimated = (json.loads(r.output.strip().splitlines()[-1]) for r in (ran, estimated))
    assert estimated["steps"] == ran["steps"] == 9 and estimated["split"] == ran["split"] == "all"
    assert estimated["samples"] == ran["samples"] == 40
    # two encoders of the same sequence feed one hwsim: the same predictions and the same spikes
    assert estimated["accuracy"] == ran["accuracy"] and ran["spikes_total"] > 0
    assert estimated["events_per_sample"]["spikes"] * 40 == pytest.approx(ran["spikes_total"])
