"""A corpus of bad data files for ``neuromap run|estimate --data``: each is refused at the boundary with exit
status 2 and exactly one ``neuromap: error:`` line naming the file (or flag) and the rule, no traceback,
nothing allocated from a declared size, no pickle ever loaded, nothing downloaded."""
from __future__ import annotations

import io
import json
import pathlib
import pickle
import zipfile

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from datafiles import (
    EVENT_DTYPE,
    SHD_EVENTS,
    events,
    tonic_folder,
    write_dvsgesture_npy,
    write_nmnist_bin,
    write_shd_h5,
)

from neuromap.cli import main
from neuromap.ir import IF, LI, Affine, Flatten, Input, Output, save_graph, sequential

rng = np.random.default_rng(0)
LABELS = np.arange(10) % 10


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """One network per input shape the corpus feeds, each with 10 outputs."""
    folder = tmp_path_factory.mktemp("models")
    shapes = {"mlp": (64,), "events": (2, 3, 4), "nmnist": (2, 34, 34), "dvsgesture": (2, 128, 128),
              "shd": (700,)}
    paths = {}
    for name, shape in shapes.items():
        size = int(np.prod(shape))
        layers = [("in", Input(shape))] + ([("flat", Flatten(shape))] if len(shape) > 1 else [])
        layers += [("fc", Affine(np.random.default_rng(1).normal(0, 0.3, (8, size)), np.zeros(8))),
                   ("if", IF((8,), threshold=1.0)), ("fc2", Affine(np.ones((10, 8)), np.zeros(10))),
                   ("li", LI((10,))), ("out", Output((10,)))]
        paths[name] = str(save_graph(sequential(layers), folder / f"{name}.npz"))
    return paths


class _Touch:
    """A pickle payload: loading it would create ``path`` (the proof that nothing unpickled it)."""

    def __init__(self, path):
        self.path = pathlib.Path(path)

    def __reduce__(self):
        return (pathlib.Path.touch, (self.path,))


def _write(path, content):
    path.write_bytes(content)
    return str(path)


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


def _images(path, x=None, y=None, **extra):
    return _npz(path, x=rng.random((10, 64)) if x is None else x, y=LABELS if y is None else y, **extra)


def _npy_bytes(array):
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def _declared(path, shape, data_bytes):
    """An .npz whose 'x' header declares ``shape`` float64 but holds ``data_bytes`` bytes of data."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x.npy", buf.getvalue() + bytes(data_bytes))
        z.writestr("y.npy", _npy_bytes(LABELS))
    return str(path)


def _zip_bomb(path):
    """An .npz whose zip directory declares 2^40 bytes for 'x' (a bomb declares its size: refused from it)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("x.npy", _npy_bytes(np.zeros((10, 64))))
        z.writestr("y.npy", _npy_bytes(LABELS))
        z.filelist[0].file_size = 2 ** 40  # the central directory is written from filelist on close
    return str(path)


def _truncated(path):
    _npz(path, x=rng.random((10, 64)), y=LABELS)
    raw = pathlib.Path(path).read_bytes()
    pathlib.Path(path).write_bytes(raw[: len(raw) // 2])
    return str(path)


def _bit_flipped(path):
    np.savez_compressed(path, x=rng.random((200, 64)), y=np.arange(200) % 10)
    raw = bytearray(pathlib.Path(path).read_bytes())
    raw[len(raw) // 3] ^= 0x10  # inside x's deflate stream
    pathlib.Path(path).write_bytes(bytes(raw))
    return str(path)


def _pickle(path, marker):
    path.write_bytes(pickle.dumps({"x": rng.random((10, 64)), "y": LABELS, "payload": _Touch(marker)}, protocol=4))
    return str(path)


def _hdf5(path):
    with h5py.File(path, "w") as f:
        f["x"] = rng.random((10, 64))
    return str(path)


def _event_file(path, given=None, offsets=None, sensor=(4, 3, 2), y=(0, 1), drop=None):
    evs = events(rng, 12, (4, 3, 2), 0, 100) if given is None else given
    arrays = {"events": evs, "offsets": np.array([0, 5, len(evs)]) if offsets is None else offsets,
              "sensor_size": np.array(sensor), "y": np.array(y)}
    if drop:
        arrays.pop(drop)
    return _npz(path, **arrays)


def _events_with(**fields):
    ev = events(rng, 12, (4, 3, 2), 0, 100)
    for name, (index, value) in fields.items():
        ev[name][index] = value
    return ev


def _recast(events, **types):
    dtype = np.dtype([(name, types.get(name, events.dtype[name])) for name in events.dtype.names])
    out = np.zeros(len(events), dtype=dtype)
    for name in events.dtype.names:
        out[name] = events[name]
    return out


def _without_p(events):
    return _recast(events)[["x", "y", "t"]].copy()


def _nmnist(root, edit):
    tonic_folder("nmnist", root, np.random.default_rng(2))
    edit(root / "NMNIST" / "Test")
    return f"nmnist:{root}"


def _dvs(root, edit):
    tonic_folder("dvsgesture", root, np.random.default_rng(3))
    edit(root / "DVSGesture" / "ibmGestureTest")
    return f"dvsgesture:{root}"


def _shd(root, write):
    root.joinpath("SHD").mkdir(parents=True)
    write(root / "SHD" / "shd_test.h5")
    return f"shd:{root}"


def _shd_without(name):
    def write(path):
        ev = events(rng, 5, (700, 1, 1), 0, 1000, SHD_EVENTS)
        write_shd_h5(path, [ev, ev], [0, 1])
        with h5py.File(path, "a") as f:
            del f[name]
    return write


def _shd_external_link(path):
    write_shd_h5(path.with_name("other.h5"), [events(rng, 5, (700, 1, 1), 0, 1000, SHD_EVENTS)] * 2, [0, 1])
    write_shd_h5(path, [events(rng, 5, (700, 1, 1), 0, 1000, SHD_EVENTS)] * 2, [0, 1])
    with h5py.File(path, "a") as f:
        del f["labels"]
        f["labels"] = h5py.ExternalLink("other.h5", "/labels")


def _shd_external_storage(path):
    write_shd_h5(path, [events(rng, 5, (700, 1, 1), 0, 1000, SHD_EVENTS)] * 2, [0, 1])
    path.with_name("raw.bin").write_bytes(np.array([0, 1], dtype="<u2").tobytes())
    with h5py.File(path, "a") as f:
        del f["labels"]
        f.create_dataset("labels", shape=(2,), dtype="<u2", external=[(str(path.with_name("raw.bin")), 0, 4)])


def _shd_labels(path, labels):
    write_shd_h5(path, [events(rng, 5, (700, 1, 1), 0, 1000, SHD_EVENTS)] * len(labels), labels)


# (case id, model, writer(tmp) -> --data value, extra arguments, the rule the error line states)
CASES = [
    ("empty file", "mlp", lambda d: _write(d / "e.npz", b""), [], "is empty (0 bytes)"),
    ("one sample, test split", "mlp", lambda d: _images(d / "one.npz", rng.random((1, 64)), np.array([3])),
     ["--split", "test"], "holds 1 sample; --split test"),
    ("truncated npz", "mlp", lambda d: _truncated(d / "t.npz"), [], "not a readable .npz file"),
    ("bit-flipped npz", "mlp", lambda d: _bit_flipped(d / "b.npz"), [], "truncated or corrupt"),
    ("plain npy", "mlp", lambda d: np.save(d / "p.npy", rng.random((10, 64))) or str(d / "p.npy"), [],
     "is a plain .npy array, not an .npz"),
    ("pickle", "mlp", lambda d: _pickle(d / "p.pkl", d / "unpickled"), [], "is a pickle, not an .npz"),
    ("pickle named npz", "mlp", lambda d: _pickle(d / "p.npz", d / "unpickled"), [], "is a pickle, not an .npz"),
    ("pickled objects inside an npz", "mlp",
     lambda d: _npz(d / "o.npz", x=np.array([_Touch(d / "unpickled")] * 10, dtype=object), y=LABELS), [],
     "holds Python objects"),
    ("HDF5 file", "mlp", lambda d: _hdf5(d / "model.nir"), [], "is an HDF5 file, not a data file"),
    ("text file", "mlp", lambda d: _write(d / "a.npz", b"x,y\n1,2\n"), [],
     "does not start like a zip archive"),
    ("label 10^12", "mlp", lambda d: _images(d / "big.npz", y=np.full(10, 10 ** 12)), [],
     "holds label 1000000000000, which none of the network's 10 outputs"),
    ("label no output matches", "mlp", lambda d: _images(d / "ten.npz", y=np.arange(10) + 1), [],
     "holds label 10, which none of the network's 10 outputs"),
    ("negative label", "mlp", lambda d: _images(d / "neg.npz", y=-LABELS), [], "labels in 'y' must be >= 0"),
    ("float labels", "mlp", lambda d: _images(d / "fy.npz", y=LABELS.astype(float)), [], "integer labels"),
    ("labels of another length", "mlp", lambda d: _images(d / "ly.npz", y=LABELS[:7]), [],
     "'x' must be (N, ...) and 'y' (N,)"),
    ("2-D labels", "mlp", lambda d: _images(d / "y2.npz", y=LABELS.reshape(10, 1)), [],
     "'x' must be (N, ...) and 'y' (N,)"),
    ("missing labels", "mlp", lambda d: _npz(d / "noy.npz", x=rng.random((10, 64))), [], "missing array 'y'"),
    ("complex x", "mlp", lambda d: _images(d / "c.npz", x=rng.random((10, 64)) + 1j), [], "'x' is complex"),
    ("string x", "mlp", lambda d: _images(d / "s.npz", x=np.full((10, 64), "a")), [], "expected real numbers"),
    ("datetime x", "mlp", lambda d: _images(d / "dt.npz", x=np.zeros((10, 64), dtype="datetime64[s]")), [],
     "expected real numbers"),
    ("NaN in x", "mlp", lambda d: _images(d / "nan.npz", x=np.full((10, 64), np.nan)), [], "'x' holds NaN or inf"),
    ("inf in x", "mlp", lambda d: _images(d / "inf.npz", x=np.full((10, 64), np.inf)), [], "'x' holds NaN or inf"),
    ("no samples", "mlp", lambda d: _images(d / "zero.npz", x=np.zeros((0, 64)), y=np.zeros(0, dtype=int)), [],
     "holds no samples"),
    ("1-D x", "mlp", lambda d: _images(d / "flat.npz", x=rng.random(10)), [], "'x' must be (N, ...)"),
    ("zip bomb", "mlp", lambda d: _zip_bomb(d / "bomb.npz"), [], "declared 1,099,511,627,776 bytes uncompressed"),
    ("header declares 8 TB", "mlp", lambda d: _declared(d / "huge.npz", (10 ** 12,), 80), [],
     "declared shape (1000000000000,)"),
    ("header and data disagree", "mlp", lambda d: _declared(d / "short.npz", (10, 64), 80), [],
     "is truncated or corrupt: its header declares 5,120 bytes"),
    ("folder", "mlp", lambda d: str(d), [], "is a folder; name a data set in it with nmnist:"),
    ("missing npz", "mlp", lambda d: str(d / "missing.npz"), [], "no such file"),
    ("unknown name", "mlp", lambda d: "cifar10", [], "unknown data set 'cifar10'"),
    ("unknown reader", "mlp", lambda d: f"coco:{d}", [], "unknown data set 'coco:"),
    ("frames of another size", "mlp", lambda d: _images(d / "seq.npz", x=rng.random((10, 5, 63))), [],
     "samples have shape (5, 63)"),
    ("steps beyond the sequence", "mlp", lambda d: _images(d / "seq.npz", x=rng.random((10, 5, 64))),
     ["--steps", "6"], "--steps 6 is more than the 5 steps"),
    ("poisson on sequences", "mlp", lambda d: _images(d / "seq.npz", x=rng.random((10, 5, 64))),
     ["--encoding", "poisson"], "--encoding poisson encodes images"),
    ("event outside the sensor", "events", lambda d: _event_file(d / "ev.npz", _events_with(x=(3, 4))), [],
     "has an event with x = 4.0, outside the sensor's 0..3"),
    ("event polarity outside", "events", lambda d: _event_file(d / "ev.npz", _events_with(p=(0, 2))), [],
     "has an event with p = 2.0"),
    ("negative event time", "events", lambda d: _event_file(d / "ev.npz", _events_with(t=(0, -5))), [],
     "event time that is negative"),
    ("NaN event time", "events", lambda d: _event_file(d / "ev.npz", _nan_time()), [],
     "event time that is negative or not finite"),
    ("offsets past the events", "events", lambda d: _event_file(d / "ev.npz", offsets=np.array([0, 5, 40])), [],
     "'offsets' must be N + 1 non-decreasing integers"),
    ("decreasing offsets", "events", lambda d: _event_file(d / "ev.npz", offsets=np.array([0, 9, 4, 12]),
                                                           y=(0, 1, 2)), [], "'offsets' must be"),
    ("bad sensor size", "events", lambda d: _event_file(d / "ev.npz", sensor=(4, 0, 2)), [],
     "'sensor_size' must be 3 positive integers"),
    ("missing offsets", "events", lambda d: _event_file(d / "ev.npz", drop="offsets"), [], "missing array 'offsets'"),
    ("events without p", "events", lambda d: _event_file(d / "ev.npz", _without_p(_events_with())), [],
     "have no field 'p'"),
    ("complex event field", "events", lambda d: _event_file(d / "ev.npz", _recast(_events_with(), x=np.complex128)),
     [], "'events.x' is complex"),
    ("not a record array", "events", lambda d: _event_file(d / "ev.npz", np.zeros(12)), [],
     "'events' must be a 1-D record array"),
    ("two polarities, one-polarity sensor", "events",
     lambda d: _event_file(d / "ev.npz", sensor=(4, 3, 1)), [], "events of several polarities"),
    ("event labels beyond the outputs", "events", lambda d: _event_file(d / "ev.npz", y=(0, 12)), [],
     "holds label 12"),
    ("nmnist: no folder", "nmnist", lambda d: f"nmnist:{d / 'nowhere'}", [], "no such folder"),
    ("nmnist: no files (would download)", "nmnist", lambda d: (d / "NMNIST").mkdir() or f"nmnist:{d}", [],
     "never downloads them"),
    ("nmnist: truncated event file", "nmnist",
     lambda d: _nmnist(d, lambda test: (test / "0" / "00000.bin").write_bytes(b"\x01" * 7)), [],
     "7 bytes is not a whole number of 5-byte N-MNIST events"),
    ("nmnist: event outside the sensor", "nmnist",
     lambda d: _nmnist(d, lambda test: write_nmnist_bin(test / "1" / "00001.bin", _events_with_x(40))), [],
     "has an event with x = 40.0"),
    ("nmnist: a file outside the class folders", "nmnist",
     lambda d: _nmnist(d, lambda test: write_nmnist_bin(test / "stray.bin", _events_with())), [],
     "tonic cannot list the files"),
    ("dvsgesture: no files (would download)", "dvsgesture",
     lambda d: (d / "DVSGesture" / "ibmGestureTest").mkdir(parents=True) or f"dvsgesture:{d}", [],
     "never downloads them"),
    ("dvsgesture: (M, 3) events", "dvsgesture",
     lambda d: _dvs(d, lambda test: np.save(test / "user01_led" / "0.npy", np.zeros((5, 3)))), [],
     "DVS Gesture events are (M, 4) columns"),
    ("dvsgesture: pickled sample", "dvsgesture",
     lambda d: _dvs(d, lambda test: np.save(test / "user01_led" / "0.npy", np.array([_Touch(d / "unpickled")] * 4,
                                                                                     dtype=object))), [],
     "holds Python objects"),
    ("dvsgesture: a folder tonic cannot parse", "dvsgesture",
     lambda d: _dvs(d, lambda test: write_dvsgesture_npy(test / "nouser" / "1.npy", _events_with())), [],
     "tonic cannot list the files"),
    ("shd: no file (would download)", "shd", lambda d: (d / "SHD").mkdir() or f"shd:{d}", [],
     "never downloads them"),
    ("shd: not HDF5", "shd", lambda d: _shd(d, lambda p: p.write_bytes(b"PK\x03\x04junk")), [], "not an HDF5 file"),
    ("shd: no labels", "shd", lambda d: _shd(d, _shd_without("labels")), [], "no dataset 'labels'"),
    ("shd: no extra/keys", "shd", lambda d: _shd(d, _shd_without("extra/keys")), [], "no dataset 'extra/keys'"),
    ("shd: labels linked to another file", "shd", lambda d: _shd(d, _shd_external_link), [],
     "dataset 'labels' is a link to another file"),
    ("shd: labels stored in a raw file", "shd", lambda d: _shd(d, _shd_external_storage), [],
     "'labels' is not a dataset stored in this file"),
    ("shd: label beyond the outputs", "shd", lambda d: _shd(d, lambda p: _shd_labels(p, [0, 19])), [],
     "holds label 19"),
]


def _nan_time():
    ev = _recast(_events_with(), t=np.float64)
    ev["t"][2] = np.nan
    return ev


def _events_with_x(x):
    ev = events(rng, 8, (34, 34, 2), 0, 1000, EVENT_DTYPE)
    ev["x"][3] = x
    return ev


def _one_error_line(res, rule, named):
    errors = [line for line in res.output.splitlines() if line.startswith("neuromap: error:")]
    assert res.exit_code == 2, res.output
    assert len(errors) == 1, res.output
    assert rule in errors[0], res.output
    assert named in errors[0], res.output
    assert "Traceback" not in res.output and "internal error" not in res.output


@pytest.fixture
def no_downloads(monkeypatch):
    import tonic.dataset

    def refuse(*args, **kwargs):
        raise AssertionError("tonic tried to download")

    monkeypatch.setattr(tonic.dataset, "download_and_extract_archive", refuse)


@pytest.mark.parametrize("case, model, write, extra, rule", CASES, ids=[c[0] for c in CASES])
def test_run_refuses_a_bad_data_file_in_one_line(case, model, write, extra, rule, models, tmp_path, no_downloads):
    spec = write(tmp_path)
    res = CliRunner().invoke(main, ["run", models[model], "--backend", "torch", "--data", spec, *extra])
    named = "--" + rule.split("--")[1].split()[0] if rule.startswith("--") else pathlib.Path(
        spec.partition(":")[2] if ":" in spec else spec).name
    _one_error_line(res, rule, named)
    assert not (tmp_path / "unpickled").exists()


ESTIMATED = {"empty file", "one sample, test split", "pickle", "bit-flipped npz", "label 10^12", "zip bomb",
             "event outside the sensor", "nmnist: no files (would download)", "shd: labels linked to another file"}
ESTIMATE_CASES = [c for c in CASES if c[0] in ESTIMATED]


@pytest.mark.parametrize("case, model, write, extra, rule", ESTIMATE_CASES, ids=[c[0] for c in ESTIMATE_CASES])
def test_estimate_refuses_a_bad_data_file_in_one_line(case, model, write, extra, rule, models, tmp_path,
                                                      no_downloads):
    spec = write(tmp_path)
    res = CliRunner().invoke(main, ["estimate", models[model], "--data", spec, "--steps", "4", *extra])
    _one_error_line(res, rule, pathlib.Path(spec.partition(":")[2] if ":" in spec else spec).name)
    assert not (tmp_path / "unpickled").exists()


def test_estimate_presents_images_for_runs_default_steps(models):
    """One default for --steps everywhere (neuromap.api.DEFAULT_STEPS): estimate no longer asks for it."""
    figures = []
    for command in (["estimate"], ["run", "--backend", "hwsim"]):
        res = CliRunner().invoke(main, [command[0], models["mlp"], *command[1:], "--data", "digits", "--limit", "2",
                                        "--json"])
        assert res.exit_code == 0, res.output
        figures.append(json.loads(res.output.strip().splitlines()[-1]))
    assert figures[0]["steps"] == figures[1]["steps"] == 32
    assert figures[0]["accuracy"] == figures[1]["accuracy"]



@pytest.mark.parametrize("command", [["train", "--arch", "fc16", "--steps", "2", "--epochs", "1"],
                                     ["convert", "--model", "mlp", "--epochs", "1"]])
def test_training_refuses_a_label_beyond_the_samples_before_building_a_network(command, tmp_path):
    spec = _images(tmp_path / "big.npz", y=np.full(10, 10 ** 12))
    res = CliRunner().invoke(main, [*command, "--data", spec])
    _one_error_line(res, "holds label 1000000000000, but 10 samples hold at most 10 classes", "big.npz")


def test_one_sample_runs_when_it_is_all_the_file_holds(models, tmp_path):
    spec = _images(tmp_path / "one.npz", rng.random((1, 64)), np.array([3]))
    res = CliRunner().invoke(main, ["run", models["mlp"], "--backend", "torch", "--data", spec])
    assert res.exit_code == 0 and "on 1 sample (all split of one) x 32 steps" in res.output, res.output
