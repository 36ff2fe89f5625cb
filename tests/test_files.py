"""Files told apart by content, read within limits; targets recorded by identity; JSON always JSON."""
from __future__ import annotations

import json
import pickle
import shutil
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from netgen import digits_mlp

import mappings
from neuromap import files
from neuromap.cli import main
from neuromap.cli.common import emit_json
from neuromap.errors import FormatError, NeuromapError
from neuromap.ir import save_graph
from neuromap.ir.nir_io import write_nir
from neuromap.ir.serialize import read_npz
from neuromap.limits import BUDGET_ENV, memory_budget
from neuromap.mapping import compile as compile_graph

TESTCHIP = mappings.load_target("testchip")


def _graph():
    return digits_mlp(hidden=8, hidden_name="h", readout_name="o")


def test_each_kind_is_told_by_its_content_whatever_the_name(tmp_path):
    graph = save_graph(_graph(), tmp_path / "a.npz")
    made = {
        "empty": b"",
        "neuromap-graph": graph.read_bytes(),
        "neuromap-mapping": compile_graph(_graph(), TESTCHIP).to_bytes(),
        "npz": None, "torch": None, "hdf5": None,
        "npy": b"\x93NUMPY\x01\x00" + b" " * 8,
        "pickle": pickle.dumps({"a": 1}, protocol=4),
        "toml": b"[target]\nname = 'x'\n",
        "text": "résumé: not TOML = = ]\n".encode(),
        "data": bytes(range(256)),
        "damaged-zip": graph.read_bytes()[:200],
    }
    for kind, content in made.items():
        path = tmp_path / f"{kind}.model"   # one misleading suffix for all
        if kind == "npz":
            np.savez(path.with_suffix(".npz"), x=np.ones(2))
            path.with_suffix(".npz").rename(path)
        elif kind == "torch":
            torch.save({"w": torch.ones(2)}, path)
        elif kind == "hdf5":
            with h5py.File(path, "w", userblock_size=512) as f:   # the signature after a user block
                f["x"] = np.ones(2)
        else:
            path.write_bytes(content)
        assert files.sniff(path) == kind, kind
    with pytest.raises(FormatError, match="a directory, not a file"):
        files.sniff(tmp_path)


def test_the_sizes_and_dtypes_are_checked_before_anything_is_decompressed(tmp_path, monkeypatch):
    path = tmp_path / "big.npz"
    np.savez_compressed(path, x=np.zeros(1 << 20))          # 8 MiB declared, ~8 KB stored
    monkeypatch.setenv(BUDGET_ENV, str(4 << 20))

    def no_load(*args, **kwargs):
        raise AssertionError("np.load ran before the sizes were checked")

    monkeypatch.setattr(np, "load", no_load)
    with pytest.raises(FormatError) as info:
        read_npz(path, "graph")
    assert "would need 8.0 MiB (8,388,736 bytes), more than the 4.0 MiB (4,194,304 bytes)" in str(info.value)
    assert info.value.needed == 8388736 and info.value.allowed == 4 << 20
    np.savez(path, x=np.ones(3) * 1j)
    with pytest.raises(FormatError, match=r"array 'x' holds complex values \(complex128\)"):
        read_npz(path, "graph")


def test_an_array_compressed_like_a_bomb_is_refused_past_the_floor(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "BOMB_FLOOR_BYTES", 1 << 20)
    zeros, noise = tmp_path / "zeros.npz", tmp_path / "noise.npz"
    np.savez_compressed(zeros, x=np.zeros(1 << 18))                                  # 2 MiB, ratio ~1000
    np.savez_compressed(noise, x=np.random.default_rng(0).normal(size=1 << 18))     # 2 MiB, ratio ~1.1
    with zipfile.ZipFile(zeros) as zf:
        info = zf.getinfo("x.npy")
    assert info.file_size > 100 * info.compress_size
    with pytest.raises(FormatError, match=r"array 'x' declares 2,097,280 bytes stored in .* \(compressed over 100"):
        read_npz(zeros, "graph")
    assert read_npz(noise, "graph")["x"].shape == (1 << 18,)


def test_an_external_link_would_have_been_followed_and_is_refused(tmp_path):
    secret = tmp_path / "secret.h5"
    with h5py.File(secret, "w") as f:
        f["w"] = np.full((8, 64), 7.0)
    nir_file = write_nir(_graph(), tmp_path / "net.nir")
    with h5py.File(nir_file, "r+") as f:
        del f["node/nodes/fc1/weight"]
        f["node/nodes/fc1/weight"] = h5py.ExternalLink(str(secret), "/w")
    with h5py.File(nir_file, "r") as f:   # plain h5py follows it: the other file's bytes become weights
        assert (f["node/nodes/fc1/weight"][()] == 7.0).all()
    with pytest.raises(FormatError) as info, files.open_hdf5(nir_file, "a NIR file"):
        pass
    assert str(info.value) == (f"{nir_file}: /node/nodes/fc1/weight is an external link to {secret}:/w; "
                               "neuromap reads only the file it is given")
    assert info.value.field == "/node/nodes/fc1/weight"
    with files.open_hdf5(write_nir(_graph(), tmp_path / "clean.nir"), "a NIR file") as f:
        assert "node" in f


def test_a_budget_given_in_the_environment_must_be_a_positive_number(monkeypatch):
    monkeypatch.setenv(BUDGET_ENV, "lots")
    with pytest.raises(NeuromapError, match=f"{BUDGET_ENV}='lots': expected a positive number of bytes"):
        memory_budget()
    monkeypatch.setenv(BUDGET_ENV, "1000")
    assert memory_budget() == 1000
    monkeypatch.delenv(BUDGET_ENV)
    assert memory_budget() > 0


def test_json_output_never_holds_nan_or_infinity(capsys):
    emit_json({"a": {"b": [1.0, np.float64(2.5)]}})
    assert json.loads(capsys.readouterr().out) == {"a": {"b": [1.0, 2.5]}}
    for bad, where in ((float("nan"), "a.b.1"), (np.float32("inf"), "a.b.1")):
        with pytest.raises(NeuromapError) as info:
            emit_json({"a": {"b": [1.0, bad]}})
        assert f"--json: figure {where!r} is" in str(info.value) and info.value.field == where
    assert capsys.readouterr().out == ""


# ---------------------------------------------------------------- deterministic bytes

def _header(mapping_bytes: bytes, tmp_path) -> dict:
    path = tmp_path / "m.npz"
    path.write_bytes(mapping_bytes)
    return json.loads(str(read_npz(path, "mapping")["__mapping__"][()]))


def test_equal_inputs_give_equal_mapping_bytes_wherever_the_target_file_lives(tmp_path):
    by_name = compile_graph(_graph(), "testchip").to_bytes()
    assert compile_graph(_graph(), TESTCHIP.source).to_bytes() == by_name
    assert _header(by_name, tmp_path)["target"]["source"] == "shipped:testchip"
    copies = []
    for folder in ("a", "b/c"):
        (tmp_path / folder).mkdir(parents=True)
        copies.append(shutil.copy(TESTCHIP.source, tmp_path / folder / "mychip.toml"))
    first, second = (compile_graph(_graph(), c).to_bytes() for c in copies)
    assert first == second
    source = _header(first, tmp_path)["target"]["source"]
    assert source.startswith("sha256:") and len(source) == len("sha256:") + 64
    with zipfile.ZipFile(tmp_path / "m.npz") as zf:
        assert str(tmp_path).encode() not in zf.read("__mapping__.npy")
    changed = tmp_path / "changed.toml"
    changed.write_text(Path(copies[0]).read_text().replace("synop_sparse_pj = 25.0", "synop_sparse_pj = 25.5"))
    assert _header(compile_graph(_graph(), changed).to_bytes(), tmp_path)["target"]["source"] != source


def test_a_loaded_mapping_saves_to_the_same_bytes_and_knows_its_target_by_any_path(tmp_path):
    from neuromap.mapping import Mapping

    user = shutil.copy(TESTCHIP.source, tmp_path / "mine.toml")
    for target in ("testchip", user):
        saved = compile_graph(_graph(), target).save(tmp_path / "m.npz")
        loaded = Mapping.load(saved)
        assert loaded.to_bytes() == saved.read_bytes()
        assert loaded.target.named_by(target) and loaded.target.named_by(TESTCHIP.source)
        assert not loaded.target.named_by("loihi2")
    other = shutil.copy(user, tmp_path / "elsewhere.toml")
    res = CliRunner().invoke(main, ["run", str(saved), "--target", str(other), "--steps", "2", "--limit", "2"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(main, ["run", str(saved), "--target", "loihi1", "--steps", "2", "--limit", "2"])
    assert res.exit_code == 2 and "compiled for target 'testchip', not 'loihi1'" in res.stderr
