"""Data sets from the user's disk (``neuromap.data``: cifar, images, tonic_sets' CIFAR10DVS, transforms,
safe_pickle): tiny files written here in each published format are read back and compared with what was
written, pixel for pixel and label for label; every bad folder or file is one error line naming it."""
from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from neuromap import data
from neuromap.cli import main
from neuromap.data import cifar, images, safe_pickle, transforms
from neuromap.errors import FormatError, NeuromapError
from neuromap.ir import IF, LI, Affine, Conv2d, Flatten, Input, Output, save_graph, sequential

RNG = np.random.default_rng(0)


# ------------------------------------------------------------------------------------------ writers
def _cifar_records(n: int, classes: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8), rng.integers(0, classes, n).astype(np.uint8)


def write_cifar10_bin(folder: Path, per_file: int = 2, test: int = 3) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """cifar-10-batches-bin/ with ``per_file`` records in each training batch; what each file holds."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, n in [*((f"data_batch_{i}.bin", per_file) for i in range(1, 6)), ("test_batch.bin", test)]:
        pixels, labels = _cifar_records(n, 10, RNG)
        # the published record: <1 x label><3072 x pixel>, red plane then green then blue, row by row
        (folder / name).write_bytes(b"".join(bytes([labels[k]]) + pixels[k].tobytes() for k in range(n)))
        written[name] = (pixels, labels)
    return written


def write_cifar100_bin(folder: Path) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, n in (("train.bin", 4), ("test.bin", 3)):
        pixels, fine = _cifar_records(n, 100, RNG)
        coarse = RNG.integers(0, 20, n).astype(np.uint8)
        (folder / name).write_bytes(b"".join(bytes([coarse[k], fine[k]]) + pixels[k].tobytes() for k in range(n)))
        written[name] = (pixels, fine, coarse)
    return written


def write_cifar_py(folder: Path, names: list[str], label_key: str, *, byte_keys: bool = False,
                   classes: int = 10) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The python version: pickled dicts with 'data' (N, 3072) uint8 and a list of labels, protocol 2 as
    cPickle wrote them."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name in names:
        pixels, labels = _cifar_records(3, classes, RNG)
        entry = {"batch_label": "testing batch 1 of 1", "data": pixels.reshape(3, -1),
                 label_key: [int(v) for v in labels], "filenames": [f"img_{k}.png" for k in range(3)]}
        if label_key == "fine_labels":
            entry["coarse_labels"] = [0, 1, 2]
        if byte_keys:
            entry = {k.encode(): v for k, v in entry.items()}
        (folder / name).write_bytes(pickle.dumps(entry, protocol=2))
        written[name] = (pixels, labels)
    return written


def python2_batch(pixels: np.ndarray, labels: list[int]) -> bytes:
    """A CIFAR batch as Python 2's cPickle wrote the published files (protocol 2, ``str`` as BINSTRING
    opcodes, numpy 1's ``numpy.core.multiarray._reconstruct``), assembled opcode by opcode."""
    def short(text: bytes) -> bytes:
        return b"U" + bytes([len(text)]) + text

    raw = pixels.reshape(len(pixels), -1).tobytes()
    dtype = (b"cnumpy\ndtype\n" + short(b"u1") + b"K\x00K\x01\x87R"          # dtype("u1", 0, 1), then its state
             + b"(K\x03" + short(b"|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb")
    array = (b"cnumpy.core.multiarray\n_reconstruct\n" + b"cnumpy\nndarray\n" + b"K\x00\x85" + short(b"b")
             + b"\x87R" + b"(K\x01" + b"M" + struct.pack("<H", len(pixels)) + b"M" + struct.pack("<H", 3072)
             + b"\x86" + dtype + b"\x89" + b"T" + struct.pack("<I", len(raw)) + raw + b"tb")
    listed = b"](" + b"".join(b"K" + bytes([v]) for v in labels) + b"e"
    return b"\x80\x02}(" + short(b"data") + array + short(b"labels") + listed + b"u."


def write_image_folder(root: Path) -> dict[str, dict[str, list[tuple[int, int, int]]]]:
    """ROOT/{train,val}/<class>/ of small uniform-colour PNG files (lossless) and one JPEG; the colours."""
    colours = {"cat": [(200, 10, 10), (190, 20, 30)], "ant": [(10, 200, 10)], "bee": [(10, 10, 200), (0, 0, 250)]}
    for split in ("train", "val"):
        for name, cs in colours.items():
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for k, c in enumerate(cs):
                Image.new("RGB", (40 + 7 * k, 30), c).save(root / split / name / f"{k}.png")
    noise = np.random.default_rng(5).integers(0, 256, (48, 48, 3), dtype=np.uint8)  # mostly scan data, little header
    Image.fromarray(noise).save(root / "train" / "ant" / "z.JPEG", quality=95)
    return {"colours": colours}


def write_aedat4(path: Path, t, x, y, p, size=(128, 128)) -> None:
    """An AEDAT 4 file (what tonic's ``read_aedat4`` decodes with the aedat package): the magic line, an
    uncompressed IOHeader flatbuffer whose description declares one event stream of ``size``, one
    size-prefixed EventPacket flatbuffer of events (t int64, x int16, y int16, on bool; aedat's
    ``flatbuffers/events.fbs`` and ``ioheader.fbs``)."""
    n = len(t)
    events = np.zeros(n, dtype=[("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("on", "u1"), ("pad", "V3")])
    events["t"], events["x"], events["y"], events["on"] = t, x, y, p
    # 0 size | 4 root -> 20 | 8 "EVTS" | 12 vtable: 6 bytes, table 8 bytes, field 0 at +4 | 20 table | 28 vector
    packet = (struct.pack("<I", 16) + b"EVTS" + struct.pack("<HHH", 6, 8, 4) + b"\0\0"
              + struct.pack("<iI", 20 - 12, 28 - 24) + struct.pack("<I", n) + events.tobytes())
    packet = struct.pack("<I", len(packet)) + packet
    xml = (f'<dv version="2.0"><node name="outInfo" path="/mainloop/Recorder/outInfo/"><node name="0" '
           f'path="/mainloop/Recorder/outInfo/0/"><attr key="compression" type="string">NONE</attr>'
           f'<attr key="typeIdentifier" type="string">EVTS</attr><node name="info" '
           f'path="/mainloop/Recorder/outInfo/0/info/"><attr key="sizeX" type="int">{size[0]}</attr>'
           f'<attr key="sizeY" type="int">{size[1]}</attr></node></node></node></dv>').encode()
    text = struct.pack("<I", len(xml)) + xml + b"\0"
    text += b"\0" * (-len(text) % 4)
    # 0 root -> 20 | 4 "IOHE" | 8 vtable: 10 bytes, fields compression and file_data_position left at their
    # defaults (none, -1), description at +4 | 20 table | 28 string
    header = (struct.pack("<I", 20) + b"IOHE" + struct.pack("<HHHHH", 10, 8, 0, 0, 4) + b"\0\0"
              + struct.pack("<iI", 12, 4) + text)
    path.write_bytes(b"#!AER-DAT4.0\r\n" + struct.pack("<I", len(header)) + header
                     + struct.pack("<II", 0, len(packet)) + packet)


def _reference_normalise(pixels: np.ndarray, mean, std) -> np.ndarray:
    """torchvision's ToTensor + Normalize written out: x / 255, minus the mean, over the std, per channel."""
    out = np.empty(pixels.shape, dtype=np.float64)
    for c in range(3):
        out[..., c, :, :] = (pixels[..., c, :, :] / 255.0 - mean[c]) / std[c]
    return out


# ------------------------------------------------------------------------------------------ CIFAR
def test_cifar10_binary_reads_back_pixel_for_pixel_in_file_and_record_order(tmp_path):
    written = write_cifar10_bin(tmp_path / "cifar-10-batches-bin")
    for path in (tmp_path, tmp_path / "cifar-10-batches-bin"):   # the unpacked folder or the one above it
        train = cifar.read("cifar10", str(path), "train")
        expected = [written[f"data_batch_{i}.bin"] for i in range(1, 6)]
        np.testing.assert_array_equal(train.images, np.concatenate([e[0] for e in expected]))
        np.testing.assert_array_equal(train.labels, np.concatenate([e[1] for e in expected]))
        test = cifar.read("cifar10", str(path), "test")
        np.testing.assert_array_equal(test.images, written["test_batch.bin"][0])
        np.testing.assert_array_equal(test.labels, written["test_batch.bin"][1])
    # the red plane is the record's first 1024 bytes, row by row: pixel (row 1, column 2) of green is byte
    # 1024 + 32 + 2 after the label
    raw = (tmp_path / "cifar-10-batches-bin" / "test_batch.bin").read_bytes()
    assert test.images[0, 1, 1, 2] == raw[1 + 1024 + 32 + 2]
    assert test.labels[1] == raw[3073]


def test_cifar100_binary_takes_the_fine_label(tmp_path):
    written = write_cifar100_bin(tmp_path / "cifar-100-binary")
    train = cifar.read("cifar100", str(tmp_path), "train")
    np.testing.assert_array_equal(train.images, written["train.bin"][0])
    np.testing.assert_array_equal(train.labels, written["train.bin"][1])
    assert not np.array_equal(written["train.bin"][1], written["train.bin"][2])


@pytest.mark.parametrize("byte_keys", [False, True])
def test_cifar_python_version_reads_back(tmp_path, byte_keys):
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    written = write_cifar_py(tmp_path / "cifar-10-batches-py", names, "labels", byte_keys=byte_keys)
    train = cifar.read("cifar10", str(tmp_path), "train")
    np.testing.assert_array_equal(train.images, np.concatenate([written[n][0] for n in names[:5]]))
    np.testing.assert_array_equal(train.labels, np.concatenate([written[n][1] for n in names[:5]]))
    pixels = RNG.integers(0, 256, (3, 3, 32, 32), dtype=np.uint8)
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(python2_batch(pixels, [7, 0, 9]))
    test = cifar.read("cifar10", str(tmp_path), "test")
    np.testing.assert_array_equal(test.images, pixels)
    np.testing.assert_array_equal(test.labels, [7, 0, 9])
    written100 = write_cifar_py(tmp_path / "c100" / "cifar-100-python", ["train", "test"], "fine_labels",
                                classes=100)
    test = cifar.read("cifar100", str(tmp_path / "c100"), "test")
    np.testing.assert_array_equal(test.images, written100["test"][0])
    np.testing.assert_array_equal(test.labels, written100["test"][1])


class _Touch:
    """A pickle payload: unpickling it creates ``path`` (the proof that something ran code from the file)."""

    def __init__(self, path):
        self.path = Path(path)

    def __reduce__(self):
        return (Path.touch, (self.path,))


def test_a_pickle_with_code_is_refused_naming_the_file_and_nothing_runs(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar_py(folder, [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"], "labels")
    proof = tmp_path / "ran"
    (folder / "test_batch").write_bytes(pickle.dumps({"data": _Touch(proof), "labels": [0]}, protocol=2))
    with pytest.raises(FormatError) as err:
        cifar.read("cifar10", str(tmp_path), "test")
    message = str(err.value)
    assert "\n" not in message and str(folder / "test_batch") in message
    assert "asks for __builtin__.getattr" in message   # how protocol 2 reaches Path.touch
    assert not proof.exists()
    for protocol in (0, 4, 5):   # every pickle protocol's way of naming a global is checked
        (folder / "test_batch").write_bytes(pickle.dumps(_Touch(proof), protocol=protocol))
        with pytest.raises(FormatError, match="refused to unpickle"):
            safe_pickle.load(folder / "test_batch", "a CIFAR-10 batch")
    assert not proof.exists()


def test_cifar_errors_name_the_path_and_the_layout(tmp_path):
    with pytest.raises(FormatError, match=r"cifar10:.*expected data_batch_1.bin \.\.\. test_batch.bin \(the binary "
                                          r"version.*or data_batch_1 \.\.\. test_batch \(the python version"):
        cifar.read("cifar10", str(tmp_path), "test")            # a folder without CIFAR files
    with pytest.raises(FormatError, match="is not a folder"):
        cifar.read("cifar10", str(tmp_path / "nowhere"), "test")
    folder = tmp_path / "cifar-10-batches-bin"
    write_cifar10_bin(folder)
    (folder / "test_batch.bin").unlink()
    with pytest.raises(FormatError, match=r"test_batch.bin is missing"):
        cifar.read("cifar10", str(tmp_path), "test")
    (folder / "test_batch.bin").write_bytes(b"\0" * (3073 * 2 - 5))        # truncated
    with pytest.raises(FormatError) as err:
        cifar.read("cifar10", str(tmp_path), "test")
    assert str(folder / "test_batch.bin") in str(err.value)
    assert "6,141 bytes is not a whole number of 3073-byte records" in str(err.value)
    assert "30,730,000 bytes" in str(err.value)
    (folder / "test_batch.bin").write_bytes(bytes([10]) + bytes(3072))     # label 10 in a 10-class set
    with pytest.raises(FormatError, match=r"test_batch.bin: record 0 has label 10, outside cifar10's 0\.\.9"):
        cifar.read("cifar10", str(tmp_path), "test")
    py = tmp_path / "py" / "cifar-10-batches-py"
    write_cifar_py(py, ["test_batch"], "labels")
    (py / "test_batch").write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [1]}, protocol=2))
    with pytest.raises(FormatError, match=r"'labels' must be a list of 2 integers"):
        cifar.read("cifar10", str(tmp_path / "py"), "test")
    (py / "test_batch").write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.float64), "labels": [1, 2]}))
    with pytest.raises(FormatError, match=r"'data' must be a \(N, 3072\) uint8 array, got float64"):
        cifar.read("cifar10", str(tmp_path / "py"), "test")
    (py / "test_batch").write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.uint8)})[:40])
    with pytest.raises(FormatError, match="truncated or corrupt"):
        cifar.read("cifar10", str(tmp_path / "py"), "test")


def test_a_limit_reads_only_the_records_it_needs(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    written = write_cifar10_bin(folder, per_file=3)
    (folder / "data_batch_3.bin").write_bytes(b"broken")                # never opened for 5 images
    first = cifar.read("cifar10", str(tmp_path), "train", limit=5)
    np.testing.assert_array_equal(first.images, np.concatenate([written["data_batch_1.bin"][0],
                                                               written["data_batch_2.bin"][0][:2]]))
    with pytest.raises(FormatError, match=r"data_batch_3\.bin"):
        cifar.read("cifar10", str(tmp_path), "train", limit=7)


def test_load_and_samples_give_normalised_cifar_images(tmp_path):
    written = write_cifar10_bin(tmp_path / "cifar-10-batches-bin")
    ds = data.load(f"cifar10:{tmp_path}")
    expected = _reference_normalise(written["test_batch.bin"][0], transforms.CIFAR10_MEAN, transforms.CIFAR10_STD)
    np.testing.assert_allclose(ds.x_test, expected, rtol=1e-6, atol=1e-6)
    assert ds.x_train.shape == (10, 3, 32, 32) and ds.x_train.dtype == np.float32 and ds.num_classes >= 1
    picked = data.samples(f"cifar10:{tmp_path}", input_shape=(3072,), outputs=10, steps=4, limit=2)
    np.testing.assert_allclose(picked.x, expected[:2].reshape(2, -1), rtol=1e-6, atol=1e-6)
    assert picked.split == "test" and picked.steps == 4 and not picked.sequence
    every = data.samples(f"cifar10:{tmp_path}", input_shape=(3, 32, 32), outputs=10, split="all", steps=4)
    assert len(every.y) == 13
    np.testing.assert_array_equal(every.y[-3:], written["test_batch.bin"][1])


def test_normalisation_statistics():
    # an image whose every pixel is the mean normalises to 0, mean + std to 1 (both within a byte's rounding)
    for mean, std in ((transforms.CIFAR10_MEAN, transforms.CIFAR10_STD),
                      (transforms.CIFAR100_MEAN, transforms.CIFAR100_STD),
                      (transforms.IMAGENET_MEAN, transforms.IMAGENET_STD)):
        at_mean = np.stack([np.full((4, 4), round(255 * m), np.uint8) for m in mean])
        np.testing.assert_allclose(transforms.normalize(at_mean, mean, std), 0, atol=0.5 / 255 / min(std))
        above = np.stack([np.full((4, 4), round(255 * (m + s)), np.uint8) for m, s in zip(mean, std)])
        np.testing.assert_allclose(transforms.normalize(above, mean, std), 1, atol=0.5 / 255 / min(std))
    # over uniform random bytes (mean 127.5/255, variance (256^2 - 1)/12/255^2) every channel's statistics follow
    pixels = RNG.integers(0, 256, (2000, 3, 8, 8), dtype=np.uint8)
    x = transforms.normalize(pixels, transforms.CIFAR10_MEAN, transforms.CIFAR10_STD)
    for c in range(3):
        assert x[:, c].mean() == pytest.approx((0.5 - transforms.CIFAR10_MEAN[c]) / transforms.CIFAR10_STD[c],
                                               abs=0.02)
        assert x[:, c].std() == pytest.approx(np.sqrt((256**2 - 1) / 12) / 255 / transforms.CIFAR10_STD[c], rel=0.02)


def test_input_range_is_where_bytes_0_and_255_normalise_to():
    lo, hi = data.input_range("cifar10:/anywhere")
    assert lo == pytest.approx(-0.4914 / 0.2023) and hi == pytest.approx((1 - 0.4465) / 0.2010)   # red 0, blue 255
    x = transforms.normalize(np.array([0, 255], np.uint8).reshape(1, 1, 2).repeat(3, 0), transforms.IMAGENET_MEAN,
                             transforms.IMAGENET_STD)
    assert data.input_range("imagenet:/x") == pytest.approx((x.min(), x.max()), abs=1e-6)
    assert data.input_range("digits") == (0.0, 1.0)
    with pytest.raises(NeuromapError, match="only image sets"):
        data.input_range("cifar10dvs:/x")


def test_cifar_augmentation_is_a_shifted_window_of_the_zero_padded_image_possibly_flipped():
    image = RNG.integers(1, 256, (3, 32, 32), dtype=np.uint8)  # no zeros: padding is told apart
    padded = np.pad(image, ((0, 0), (4, 4), (4, 4)))
    seen_flip, seen_plain, offsets = False, False, set()
    for seed in range(60):
        out = transforms.cifar_augment(image, np.random.default_rng(seed))
        assert out.shape == (3, 32, 32) and out.dtype == np.uint8
        np.testing.assert_array_equal(out, transforms.cifar_augment(image, np.random.default_rng(seed)))
        matches = [(dy, dx, flip) for dy in range(9) for dx in range(9) for flip in (False, True)
                   if np.array_equal(out, (lambda w: w[:, :, ::-1] if flip else w)(padded[:, dy:dy + 32, dx:dx + 32]))]
        assert len(matches) == 1
        dy, dx, flip = matches[0]
        offsets.add((dy, dx))
        seen_flip, seen_plain = seen_flip or flip, seen_plain or not flip
    assert seen_flip and seen_plain                            # flips vary, and crops reach every offset
    assert {dy for dy, _ in offsets} == set(range(9)) == {dx for _, dx in offsets}


def test_splits_augment_the_training_set_only_and_deterministically(tmp_path):
    write_cifar10_bin(tmp_path / "cifar-10-batches-bin")
    s = data.splits(f"cifar10:{tmp_path}", seed=3)
    assert (len(s.train), len(s.test), s.num_classes, s.sample_shape) == (10, 3, 10, (3, 32, 32))
    x0, y0 = s.train[0]
    assert x0.shape == (3, 32, 32) and x0.dtype == torch.float32
    again = data.splits(f"cifar10:{tmp_path}", seed=3)
    assert torch.equal(again.train[0][0], x0) and again.train[0][1] == y0
    epochs = [s.train[0][0]]
    for epoch in range(1, 6):
        s.train.set_epoch(epoch)
        epochs.append(s.train[0][0])
    assert any(not torch.equal(epochs[0], e) for e in epochs[1:])
    reference = data.load(f"cifar10:{tmp_path}")
    np.testing.assert_array_equal(s.test[1][0].numpy(), reference.x_test[1])   # no augmentation in test
    batch = next(iter(torch.utils.data.DataLoader(s.train, batch_size=4)))
    assert batch[0].shape == (4, 3, 32, 32) and batch[1].shape == (4,)


# ------------------------------------------------------------------------------------------ image folder
def test_image_folder_classes_are_sorted_and_images_decoded_lazily(tmp_path):
    written = write_image_folder(tmp_path)
    train = images.scan(str(tmp_path), "train")
    assert train.classes == ("ant", "bee", "cat")
    assert [f.name for f in train.files] == ["0.png", "z.JPEG", "0.png", "1.png", "0.png", "1.png"]
    np.testing.assert_array_equal(train.labels, [0, 0, 1, 1, 2, 2])
    s = data.splits(f"imagenet:{tmp_path}", input_shape=(3, 16, 16), seed=0)
    assert (len(s.train), len(s.test), s.num_classes, s.sample_shape) == (6, 5, 3, (3, 16, 16))
    (tmp_path / "val" / "cat" / "1.png").write_bytes(b"not an image")   # listed, not decoded until asked for
    s = data.splits(f"imagenet:{tmp_path}", input_shape=(3, 16, 16))
    x, label = s.test[1]                                                # val/bee/0.png: a uniform colour
    colour = written["colours"]["bee"][0]
    expected = [(colour[c] / 255 - transforms.IMAGENET_MEAN[c]) / transforms.IMAGENET_STD[c] for c in range(3)]
    assert label == 1 and x.shape == (3, 16, 16)
    np.testing.assert_allclose(x.numpy(), np.broadcast_to(np.array(expected)[:, None, None], (3, 16, 16)), atol=1e-5)
    with pytest.raises(FormatError, match=r"val/cat/1.png: not a readable image"):
        s.test[4]
    t1, t2 = s.train[3][0], data.splits(f"imagenet:{tmp_path}", input_shape=(3, 16, 16)).train[3][0]
    assert t1.shape == (3, 16, 16) and torch.equal(t1, t2)


def test_imagenet_eval_resizes_the_short_side_and_takes_the_centre():
    # a 64 x 32 image (W x H) whose columns are numbered: resize the short side to 256/224 * 14 = 16, so
    # 32 x 16, then the centre 14 x 14 crop starts at column round((32 - 14) / 2) = 9 of the resized image
    columns = np.tile(np.repeat(np.arange(32, dtype=np.uint8) * 8, 2)[None, :, None], (32, 1, 3))
    out = transforms.imagenet_eval(Image.fromarray(columns), (14, 14))
    assert out.shape == (3, 14, 14)
    resized = np.asarray(Image.fromarray(columns).resize((32, 16), Image.Resampling.BILINEAR)).transpose(2, 0, 1)
    np.testing.assert_array_equal(out, resized[:, 1:15, 9:23])


def test_random_resized_crop_stays_inside_torchvisions_bounds():
    boxes = {transforms.resized_crop_box(80, 60, np.random.default_rng(seed)) for seed in range(200)}
    for left, top, w, h in boxes:
        assert left >= 0 and left + w <= 80 and top >= 0 and top + h <= 60
        assert 0.08 * 4800 * 0.9 <= w * h <= 4800 and 3 / 4 * 0.9 <= w / h <= 4 / 3 * 1.1
    areas = sorted(w * h for _, _, w, h in boxes)   # uniform in 8-100 %: the smallest near 8 %, the median near 54 %
    assert len(boxes) > 150 and areas[0] < 0.15 * 4800 and 0.4 * 4800 < areas[len(areas) // 2] < 0.7 * 4800
    # a 400 x 10 strip fits no crop of ratio <= 4/3 with 8 % of its area: the fallback is the centre at 4/3
    assert transforms.resized_crop_box(400, 10, np.random.default_rng(0)) == ((400 - 13) // 2, 0, 13, 10)
    out = transforms.imagenet_train(Image.new("RGB", (50, 40), (9, 99, 199)), (8, 12), np.random.default_rng(1))
    assert out.shape == (3, 8, 12)
    np.testing.assert_array_equal(out[:, 0, 0], [9, 99, 199])


def test_image_folder_errors(tmp_path):
    with pytest.raises(FormatError, match=r"imagenet:.*no folder .*val \(expected PATH/train/<class>/\*.JPEG"):
        images.scan(str(tmp_path), "test")
    (tmp_path / "train").mkdir()
    with pytest.raises(FormatError, match="holds no class folders"):
        images.scan(str(tmp_path), "train")
    write_image_folder(tmp_path)
    (tmp_path / "val" / "dog").mkdir()
    with pytest.raises(FormatError, match=r"val/dog is a class the training folder .* does not have"):
        images.scan(str(tmp_path), "test")
    (tmp_path / "val" / "dog").rmdir()
    jpeg = tmp_path / "train" / "ant" / "z.JPEG"
    jpeg.write_bytes(jpeg.read_bytes()[:len(jpeg.read_bytes()) * 3 // 4])  # truncated inside the scan
    with pytest.raises(FormatError, match=r"z.JPEG: not a readable image, truncated or corrupt"):
        images.decode(jpeg)
    with pytest.raises(FormatError, match=r"imagenet images are RGB, \(3, H, W\)"):
        data.samples(f"imagenet:{tmp_path}", input_shape=(64,), outputs=3, steps=2)


def test_imagenet_samples_spread_a_limit_over_the_classes(tmp_path):
    write_image_folder(tmp_path)
    picked = data.samples(f"imagenet:{tmp_path}", input_shape=(3, 8, 8), outputs=3, steps=2, limit=3)
    np.testing.assert_array_equal(picked.y, [0, 1, 2])                  # val: ant 0, bee 0 1, cat 0 1
    assert picked.x.shape == (3, 3, 8, 8)


# ------------------------------------------------------------------------------------------ DVS-CIFAR10
def _dvs_folder(root: Path) -> list[tuple[str, np.ndarray]]:
    """PATH/CIFAR10DVS/<class>/*.aedat4, ten recordings of two classes; each file's events."""
    written = []
    for label in ("airplane", "cat"):
        (root / "CIFAR10DVS" / label).mkdir(parents=True)
        for k in range(10):
            n = 20 + k
            t = np.sort(RNG.integers(0, 1000, n))
            x, y, p = RNG.integers(0, 128, n), RNG.integers(0, 128, n), RNG.integers(0, 2, n)
            path = root / "CIFAR10DVS" / label / f"cifar10_{label}_{k}.aedat4"
            write_aedat4(path, t, x, y, p)
            written.append((str(path), np.rec.fromarrays([t, x, y, p], names="t,x,y,p")))
    return written


def _frames(events: np.ndarray, steps: int) -> np.ndarray:
    """Event counts per (step, polarity, y, x), binned by hand as neuromap.data.events specifies."""
    out = np.zeros((steps, 2, 128, 128))
    first, span = events.t.min(), events.t.max() - events.t.min() + 1
    for e in events:
        out[(e.t - first) * steps // span, e.p, e.y, e.x] += 1
    return out


def test_cifar10dvs_reads_through_tonic_with_the_per_class_90_10_split(tmp_path):
    pytest.importorskip("aedat")
    written = _dvs_folder(tmp_path)
    picked = data.samples(f"cifar10dvs:{tmp_path}", input_shape=(2, 128, 128), outputs=10, steps=3)
    # test = the last 10 % of each class in file order: cifar10_airplane_9 (class 0) and cifar10_cat_9 (3)
    np.testing.assert_array_equal(picked.y, [0, 3])
    assert picked.sequence and picked.x.shape == (2, 3, 2, 128, 128)
    np.testing.assert_array_equal(picked.x[0], _frames(written[9][1], 3))
    np.testing.assert_array_equal(picked.x[1], _frames(written[19][1], 3))
    s = data.splits(f"cifar10dvs:{tmp_path}", steps=4)
    assert (len(s.train), len(s.test), s.num_classes, s.sample_shape) == (18, 2, 10, (4, 2, 128, 128))
    x, label = s.train[9]                                               # cat's first recording
    assert label == 3
    np.testing.assert_array_equal(x.numpy(), _frames(written[10][1], 4))
    (tmp_path / "CIFAR10DVS" / "cat" / "cifar10_cat_9.aedat4").write_bytes(b"#!AER-DAT4.0\r\n\1\0")
    with pytest.raises(FormatError, match=r"cifar10_cat_9.aedat4: tonic cannot read sample"):
        data.samples(f"cifar10dvs:{tmp_path}", input_shape=(2, 128, 128), outputs=10, steps=3)
    (tmp_path / "CIFAR10DVS" / "cat" / "cifar10_cat_9.aedat4").write_bytes(b"RIFF")
    with pytest.raises(FormatError, match=r"cifar10_cat_9.aedat4: not an AEDAT 4 file"):
        data.samples(f"cifar10dvs:{tmp_path}", input_shape=(2, 128, 128), outputs=10, steps=3)


def test_cifar10dvs_folder_errors(tmp_path, monkeypatch):
    from neuromap.data import tonic_sets

    with pytest.raises(FormatError, match=r"cifar10dvs:.*no such folder \(expected PATH/CIFAR10DVS/<class>"):
        data.samples(f"cifar10dvs:{tmp_path / 'x'}", input_shape=(2, 128, 128), outputs=10, steps=3)
    if tonic_sets.importlib.util.find_spec("aedat") is not None:
        with pytest.raises(FormatError, match=r"no cifar10dvs files in .*CIFAR10DVS .*never downloads"):
            data.samples(f"cifar10dvs:{tmp_path}", input_shape=(2, 128, 128), outputs=10, steps=3)
    monkeypatch.setattr(tonic_sets.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(NeuromapError, match=r"aedat package, which is not installed"):
        data.samples(f"cifar10dvs:{tmp_path}", input_shape=(2, 128, 128), outputs=10, steps=3)


@pytest.mark.parametrize("kind", ["nmnist", "shd"])
def test_event_sets_as_arrays_and_as_lazy_torch_datasets(kind, tmp_path):
    from datafiles import tonic_folder

    from neuromap.data.events import bin_events

    test_events, test_labels = tonic_folder(kind, tmp_path, np.random.default_rng(2))
    sensor = (34, 34, 2) if kind == "nmnist" else (700, 1, 1)
    expected = np.stack([bin_events(ev, sensor, 5) for ev in test_events])
    ds = data.load(f"{kind}:{tmp_path}", steps=5)
    np.testing.assert_array_equal(ds.x_test, expected)
    np.testing.assert_array_equal(ds.y_test, test_labels)
    s = data.splits(f"{kind}:{tmp_path}", steps=5)
    assert s.sample_shape == ds.x_test.shape[1:] and len(s.test) == 3 and len(s.train) == 3
    x, label = s.test[2]
    np.testing.assert_array_equal(x.numpy(), expected[2])
    assert label == test_labels[2]


def test_docs_name_every_form_and_layout():
    from neuromap.data import tonic_sets

    page = (Path(__file__).parents[1] / "docs" / "data.md").read_text()
    for kind in data.FOLDER_SETS:
        assert f"`{kind}:PATH`" in page
    for layout in cifar.LAYOUTS.values():
        assert f"`PATH/{layout.binary_folder}/`" in page and f"`PATH/{layout.python_folder}/`" in page
    assert "PATH/CIFAR10DVS/<class>/*.aedat4" in page and tonic_sets.LAYOUTS["cifar10dvs"].startswith(
        "PATH/CIFAR10DVS/<class>/*.aedat4")
    for values in (transforms.CIFAR10_MEAN, transforms.CIFAR100_STD, transforms.IMAGENET_MEAN):
        assert ", ".join(str(v) for v in values) in page


# ------------------------------------------------------------------------------------------ forms, CLI
def test_forms_are_parsed_and_unknown_ones_listed():
    assert data.parse("cifar100:/d:x") == ("cifar100", "/d:x")
    assert data.parse("mnist5k") is None and data.parse("my:file.npz") is None
    with pytest.raises(NeuromapError, match=r"name the folder after the colon \(imagenet:PATH\)"):
        data.parse("imagenet:")
    with pytest.raises(NeuromapError, match=r"shd:PATH, cifar10dvs:PATH, cifar10:PATH, cifar100:PATH or imagenet:PATH"):
        data.load("cifar-10")
    with pytest.raises(NeuromapError, match=r"events are binned to T frames"):
        data.load("cifar10dvs:/nowhere")


@pytest.fixture(scope="module")
def conv_model(tmp_path_factory):
    """A tiny conv network on 3 x 32 x 32 inputs with 10 outputs."""
    rng = np.random.default_rng(1)
    graph = sequential([
        ("in", Input((3, 32, 32))),
        ("conv", Conv2d((3, 32, 32), rng.normal(0, 0.3, (4, 3, 3, 3)), np.zeros(4), stride=(2, 2))),
        ("if1", IF((4, 15, 15), threshold=1.0)),
        ("flat", Flatten((4, 15, 15))),
        ("fc", Affine(rng.normal(0, 0.1, (10, 900)), np.zeros(10))),
        ("li", LI((10,))),
        ("out", Output((10,))),
    ])
    return str(save_graph(graph, tmp_path_factory.mktemp("model") / "conv.npz"))


def test_cli_run_on_cifar10_from_disk(tmp_path, conv_model):
    write_cifar10_bin(tmp_path / "cifar-10-batches-bin", test=6)
    result = CliRunner().invoke(main, ["run", conv_model, "--backend", "torch", "--data", f"cifar10:{tmp_path}",
                                       "--limit", "4", "--steps", "4", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["samples"] == 4 and summary["split"] == "test" and summary["steps"] == 4
    missing = CliRunner().invoke(main, ["run", conv_model, "--data", f"cifar10:{tmp_path / 'none'}", "--limit", "4"])
    assert missing.exit_code == 2
    lines = [line for line in missing.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("neuromap: error: cifar10:")
    assert "expected data_batch_1.bin" in lines[0]


def test_a_graph_run_on_normalised_images_is_compiled_for_their_range(tmp_path, conv_model):
    """run/estimate compile a graph for a normalised image set's range (neuromap.data.input_range), as
    `neuromap compile --input-range` does by hand: the same predictions, and no input clipped; compiled for
    the default [0, 1] the same images are clipped, with the warning naming the flag."""
    write_cifar10_bin(tmp_path / "cifar-10-batches-bin", test=6)
    spec = f"cifar10:{tmp_path}"
    lo, hi = data.input_range(spec)
    args = ["--backend", "hwsim", "--data", spec, "--limit", "6", "--steps", "4", "--json"]
    on_the_fly = CliRunner().invoke(main, ["run", conv_model, *args])
    assert on_the_fly.exit_code == 0, on_the_fly.output
    assert "ClippedInput" not in on_the_fly.output and "outside the input range" not in on_the_fly.output
    by_hand = tmp_path / "ranged.map.npz"
    compiled = CliRunner().invoke(main, ["compile", conv_model, "--input-range", f"{lo},{hi}", "--out", str(by_hand)])
    assert compiled.exit_code == 0, compiled.output
    ranged = CliRunner().invoke(main, ["run", str(by_hand), *args])
    assert ranged.exit_code == 0 and "outside the input range" not in ranged.output
    assert json.loads(ranged.output.strip().splitlines()[-1])["accuracy"] == \
        json.loads(on_the_fly.output.strip().splitlines()[-1])["accuracy"]
    unit = tmp_path / "unit.map.npz"
    assert CliRunner().invoke(main, ["compile", conv_model, "--out", str(unit)]).exit_code == 0
    clipped = CliRunner().invoke(main, ["run", str(unit), *args])
    assert clipped.exit_code == 0 and "outside the input range [0, 1]" in clipped.output
    assert "--input-range" in clipped.output
    bad = CliRunner().invoke(main, ["compile", conv_model, "--input-range", "1,0"])
    assert bad.exit_code == 2 and "--input-range" in bad.output
