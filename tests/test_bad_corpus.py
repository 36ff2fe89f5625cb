"""The bad-input corpus: every file type, flag and command fed something broken, absurd or hostile.

Each case runs the CLI in-process (click's CliRunner) and must end with exit status 2 and exactly one
``neuromap: error:`` line on stderr naming the problem (or, for a value click's own types refuse, click's one
``Error:`` line naming the flag), no traceback, no output file left behind, the pickle payloads' marker never
written, and the process's peak memory grown by less than ``RSS_BOUND`` (the bombs declare far more). A few
cases run again in a subprocess under an address-space limit (RLIMIT_AS), where the budget comes from the
limit itself. The data-file cases (``--data``) are in tests/test_data_files.py.
"""
from __future__ import annotations

import pickle
import re
import resource
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from netgen import digits_mlp

from neuromap.cli import main
from neuromap.ir import IF, Input, Output, save_graph, sequential
from neuromap.ir.nir_io import write_nir
from neuromap.ir.serialize import graph_to_arrays, header_array, npz_bytes
from neuromap.limits import BUDGET_ENV
from neuromap.mapping import compile as compile_graph

BUDGET = 256 << 20          # NEUROMAP_MEMORY_BUDGET for the in-process cases
RSS_BOUND = 512 << 20       # peak-memory growth allowed per case
TESTCHIP = Path(__file__).parents[1] / "mappings" / "targets" / "testchip.toml"
H100 = Path(__file__).parents[1] / "mappings" / "gpus" / "h100.toml"
ROOT = Path(__file__).parents[1]


class Payload:
    """Unpickling it creates the marker file: the proof that code from a file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _graph():
    return digits_mlp(hidden=8, hidden_name="h", readout_name="o")


@dataclass
class Work:
    """The good files every bad one is made from, and where cases write."""

    root: Path
    graph: Path = field(init=False)
    mapping: Path = field(init=False)
    nir: Path = field(init=False)
    weights: Path = field(init=False)
    marker: Path = field(init=False)

    def __post_init__(self) -> None:
        g = _graph()
        self.graph = save_graph(g, self.root / "good" / "graph.npz")
        self.mapping = compile_graph(g, "testchip").save(self.root / "good" / "mapping.npz")
        self.nir = write_nir(g, self.root / "good" / "net.nir")
        from neuromap.frontends import rmp

        torch.manual_seed(0)
        self.weights = self.root / "good" / "mlp.pt"
        torch.save(rmp.build_model("mlp", (1, 8, 8), 10).state_dict(), self.weights)
        self.marker = self.root / "pwned"
        self.counter = 0
        self.made: dict[str, Path] = {}   # each bad model file is made once and fed to every command

    def path(self, suffix: str) -> Path:
        self.counter += 1
        (self.root / "bad").mkdir(exist_ok=True)
        return self.root / "bad" / f"f{self.counter}{suffix}"

    def write(self, suffix: str, data: bytes | str) -> Path:
        path = self.path(suffix)
        if isinstance(data, str):
            path.write_text(data)
        else:
            path.write_bytes(data)
        return path

    def out(self, name: str = "out.npz") -> Path:
        """An output path in a fresh folder; the case fails if anything is left in it."""
        self.counter += 1
        folder = self.root / "outs" / f"o{self.counter}"
        folder.mkdir(parents=True)
        return folder / name


# ---------------------------------------------------------------- bad model files (graph, Mapping, NIR)

def _flip(src: Path, member: str, dst: Path) -> Path:
    """``src`` with one byte flipped in the middle of ``member``'s compressed data (the CRC then fails)."""
    data = bytearray(src.read_bytes())
    with zipfile.ZipFile(src) as zf:
        info = zf.getinfo(member)
    start = info.header_offset + 30 + len(info.filename.encode()) + int.from_bytes(
        data[info.header_offset + 28:info.header_offset + 30], "little")
    data[start + info.compress_size // 2] ^= 0xFF
    dst.write_bytes(bytes(data))
    return dst


def _edited_graph(w: Work, edit: Callable[[dict, dict], None]) -> Path:
    import json

    arrays = graph_to_arrays(_graph())
    header = json.loads(str(arrays["__graph__"][()]))
    edit(header, arrays)
    arrays["__graph__"] = header_array(header)
    return w.write(".npz", npz_bytes(arrays))


def _zip(w: Work, members: dict[str, bytes]) -> Path:
    path = w.path(".npz")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _npy(shape: tuple[int, ...], dtype: str, payload: bytes) -> bytes:
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": np.dtype(dtype).str, "fortran_order": False,
                                                "shape": shape})
    return buf.getvalue() + payload


def _bomb(w: Work) -> Path:
    """A graph file whose one array inflates to 512 MiB of zeros (twice the budget) from about 0.5 MB."""
    path = w.path(".npz")
    n = (512 << 20) // 8
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("__graph__.npy", npz_member(graph_to_arrays(_graph())["__graph__"]))
        with zf.open("fc1/weight.npy", "w", force_zip64=True) as member:
            member.write(_npy((n,), "<f8", b""))
            chunk = bytes(1 << 20)
            for _ in range((n * 8) >> 20):
                member.write(chunk)
    return path


def npz_member(array: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def _nir_edit(w: Work, edit: Callable[[h5py.File, Path], None]) -> Path:
    path = w.path(".nir")
    path.write_bytes(w.nir.read_bytes())
    with h5py.File(path, "r+") as f:
        edit(f, path.parent)
    return path


def _replace(f: h5py.File, where: str, make: Callable[[h5py.File, str], None]) -> None:
    del f[where]
    make(f, where)


def _other_h5(folder: Path) -> Path:
    other = folder / "other.h5"
    with h5py.File(other, "w") as g:
        g.create_dataset("w", data=np.full((8, 64), 7.0))
    return other


def _external_link(f: h5py.File, folder: Path) -> None:
    other = _other_h5(folder)
    _replace(f, "node/nodes/fc1/weight", lambda f, k: f.__setitem__(k, h5py.ExternalLink(str(other), "/w")))


def _external_storage(f: h5py.File, folder: Path) -> None:
    raw = folder / "secret.raw"
    raw.write_bytes(np.full(8 * 64, 7.0).tobytes())
    _replace(f, "node/nodes/fc1/weight",
             lambda f, k: f.create_dataset(k, shape=(8, 64), dtype="<f8", external=[(str(raw), 0, 8 * 64 * 8)]))


def _virtual(f: h5py.File, folder: Path) -> None:
    other = _other_h5(folder)
    layout = h5py.VirtualLayout(shape=(8, 64), dtype="<f8")
    layout[:] = h5py.VirtualSource(str(other), "w", shape=(8, 64))
    _replace(f, "node/nodes/fc1/weight", lambda f, k: f.create_virtual_dataset(k, layout))


def _soft_link(f: h5py.File, folder: Path) -> None:
    f["node/nodes/fc1/weight2"] = h5py.SoftLink("/node/nodes/fc2/weight")


def _complex_nir(f: h5py.File, folder: Path) -> None:
    _replace(f, "node/nodes/fc1/weight", lambda f, k: f.create_dataset(k, data=np.ones((8, 64)) * (1 + 1j)))


def _huge_dataset(f: h5py.File, folder: Path) -> None:
    # 16 GiB declared, nothing stored: reading it would allocate the lot
    _replace(f, "node/nodes/fc1/weight", lambda f, k: f.create_dataset(k, shape=(1 << 16, 1 << 16), dtype="<f4",
                                                                        chunks=(1024, 1024), compression="gzip"))


def _cycle(f: h5py.File, folder: Path) -> None:
    f["node/nodes/fc1/loop"] = f["node"]


def _pickled_metadata(w: Work) -> Callable[[h5py.File, Path], None]:
    def edit(f: h5py.File, folder: Path) -> None:
        group = f["node/nodes/h/metadata"]
        del group["neuromap.v_init"]
        group.create_dataset("neuromap.v_init", data=np.void(pickle.dumps(Payload(w.marker))))
    return edit


def _object_weights(w: Work) -> Path:
    arrays = graph_to_arrays(_graph())
    arrays["fc1/weight"] = np.array([Payload(w.marker)], dtype=object)
    path = w.path(".npz")
    np.savez(path, **arrays)
    return path


def _torch_checkpoint(w: Work) -> Path:
    return w.write(".npz", w.weights.read_bytes())


def _non_nir_h5(w: Work) -> Path:
    path = w.path(".h5")
    with h5py.File(path, "w") as f:
        f.create_dataset("weights", data=np.ones(3))
    return path


def _half(src: Path) -> Callable[[Work], Path]:
    return lambda w: w.write(src.suffix, src.read_bytes()[:len(src.read_bytes()) // 2])


MODEL_FILES: dict[str, tuple[Callable[[Work], Path], str]] = {
    "empty": (lambda w: w.write(".npz", b""),
              "an empty file, not a NIR file, lava-dl netx file, neuromap graph or Mapping"),
    "text": (lambda w: w.write(".npz", "layer fc1: 64 -> 8\n"), "a text file, not a NIR file"),
    "toml": (lambda w: w.write(".npz", TESTCHIP.read_text()), "a TOML file, not a NIR file"),
    "random": (lambda w: w.write(".npz", np.random.default_rng(1).bytes(4096)),
               "binary data of no known format, not a NIR file"),
    "pickle": (lambda w: w.write(".npz", pickle.dumps(Payload(w.marker))), "a pickle, not a NIR file"),
    "npy": (lambda w: w.write(".npy", npz_member(np.ones((8, 64)))), "a plain .npy array, not a NIR file"),
    "torch-checkpoint": (_torch_checkpoint, "a torch checkpoint, not a NIR file"),
    "other-npz": (lambda w: w.write(".npz", npz_bytes({"x": np.ones(3)})), "an .npz of other arrays, not a NIR"),
    "zip-of-text": (lambda w: _zip(w, {"readme.txt": b"hello"}), "a zip archive, not a NIR file"),
    "hdf5-not-nir": (_non_nir_h5, "not a NIR file (no 'node' group)"),
    "graph-truncated": (lambda w: _half(w.graph)(w), "a damaged zip archive, not a NIR file"),
    "mapping-truncated": (lambda w: _half(w.mapping)(w), "a damaged zip archive, not a NIR file"),
    "nir-truncated": (lambda w: _half(w.nir)(w), "not a NIR file (unreadable HDF5"),
    "graph-flipped-header": (lambda w: _flip(w.graph, "__graph__.npy", w.path(".npz")),
                             "not a readable .npz model file"),
    "graph-flipped-weights": (lambda w: _flip(w.graph, "fc1/weight.npy", w.path(".npz")),
                              "not a readable .npz model file"),
    "mapping-flipped-header": (lambda w: _flip(w.mapping, "__mapping__.npy", w.path(".npz")),
                               "not a readable .npz model file"),
    "mapping-flipped-weights": (lambda w: _flip(w.mapping, "proj/0/weights.npy", w.path(".npz")),
                                "not a readable .npz model file"),
    "object-array": (_object_weights, "holds Python objects"),
    "complex-weights": (lambda w: _edited_graph(w, lambda h, a: a.__setitem__("fc1/weight", a["fc1/weight"] + 1j)),
                        "array 'fc1/weight' holds complex values"),
    "complex-nir": (lambda w: _nir_edit(w, _complex_nir), "dataset /node/nodes/fc1/weight holds complex values"),
    "billion-neurons": (lambda w: save_graph(sequential([("in", Input(shape=(10**9,))),
                                                         ("h", IF(shape=(10**9,), threshold=1.0)),
                                                         ("out", Output(shape=(10**9,)))]), w.path(".npz")),
                        "its 1,000,000,000 neurons would need 29.8 GiB"),
    "zip-bomb": (_bomb, "the arrays of this model file would need 512.0 MiB"),
    "npy-declares-more": (lambda w: _zip(w, {"__graph__.npy": npz_member(graph_to_arrays(_graph())["__graph__"]),
                                             "fc1/weight.npy": _npy((10**6,), "<f8", bytes(64))}),
                          "array 'fc1/weight' declares shape (1000000,) of float64, 8,000,000 bytes, but holds 64"),
    "member-not-npy": (lambda w: _zip(w, {"__graph__.npy": npz_member(graph_to_arrays(_graph())["__graph__"]),
                                          "evil.txt": b"x"}), "member 'evil.txt' is not an .npy array"),
    "graph-version": (lambda w: _edited_graph(w, lambda h, a: h.__setitem__("version", 99)),
                      "graph format version 99 is not supported"),
    "graph-header-not-json": (lambda w: w.write(".npz", npz_bytes({**graph_to_arrays(_graph()),
                                                                    "__graph__": np.array("{not json")})),
                              "graph header is not valid JSON"),
    "graph-unknown-kind": (lambda w: _edited_graph(w, lambda h, a: h["nodes"][2].__setitem__("kind", "Izhikevich")),
                           "node 'h' has unknown kind 'Izhikevich'"),
    "nir-external-link": (lambda w: _nir_edit(w, _external_link),
                          "/node/nodes/fc1/weight is an external link to"),
    "nir-external-storage": (lambda w: _nir_edit(w, _external_storage),
                             "dataset /node/nodes/fc1/weight is stored in external file(s)"),
    "nir-virtual": (lambda w: _nir_edit(w, _virtual), "dataset /node/nodes/fc1/weight is a virtual dataset"),
    "nir-soft-link": (lambda w: _nir_edit(w, _soft_link), "/node/nodes/fc1/weight2 is a soft link"),
    "nir-huge-dataset": (lambda w: _nir_edit(w, _huge_dataset),
                         "dataset /node/nodes/fc1/weight declares 17,179,869,184 bytes stored in 0"),
    "nir-cycle": (lambda w: _nir_edit(w, _cycle), "links back to a group already read (a cycle)"),
    "nir-pickled-metadata": (lambda w: _nir_edit(w, _pickled_metadata(w)),
                             "node 'h': metadata 'neuromap.v_init' is not numeric"),
}
MODEL_COMMANDS: dict[str, Callable[[Work, Path], tuple[list[str], list[Path]]]] = {}


def _compile(w: Work, model: Path) -> tuple[list[str], list[Path]]:
    out = w.out()
    return ["compile", str(model), "--target", "testchip", "--out", str(out)], [out]


def _run(w: Work, model: Path) -> tuple[list[str], list[Path]]:
    out = w.out()
    return ["run", str(model), "--steps", "2", "--limit", "2", "--save-spikes", str(out)], [out]


def _estimate(w: Work, model: Path) -> tuple[list[str], list[Path]]:
    return ["estimate", str(model), "--data", "digits", "--steps", "2", "--limit", "2", "--json"], []


MODEL_COMMANDS.update(compile=_compile, run=_run, estimate=_estimate)


# ---------------------------------------------------------------- targets and GPU profiles

def _target(w: Work, *subs: tuple[str, str]) -> Path:
    text = TESTCHIP.read_text()
    for pattern, new in subs:
        text, n = re.subn(pattern, new, text, count=1, flags=re.M)
        assert n == 1, pattern
    return w.write(".toml", text)


TARGETS: dict[str, tuple[Callable[[Work], Path], str]] = {
    "zero-energies": (lambda w: _target(w, (r"^neuron_access_pj = .*$", "neuron_access_pj = 0.0")),
                      "[constant_sets.testchip.energy] neuron_access_pj: must be a finite number > 0, got 0.0"),
    "zero-barrier": (lambda w: _target(w, (r"^barrier_ns = .*$", "barrier_ns = [[1, 0.0], [4, 400.0]]")),
                     "[constant_sets.testchip.timing] barrier_ns[0]: must be a finite number > 0, got 0.0"),
    "huge-energy": (lambda w: _target(w, (r"^synop_sparse_pj = .*$", "synop_sparse_pj = 1e308")),
                    "[constant_sets.testchip.energy] synop_sparse_pj: must be at most 1e+06 (1 uJ per event), got "
                    "1e+308"),
    "huge-time": (lambda w: _target(w, (r"^hop_east_west_ns = .*$", "hop_east_west_ns = 1e308")),
                  "[constant_sets.testchip.timing] hop_east_west_ns: must be at most 1e+09"),
    "inf-power": (lambda w: _target(w, (r"^board_power_mw = .*$", "board_power_mw = inf")),
                  "[constant_sets.testchip.energy] board_power_mw: must be a finite number >= 0, got inf"),
    "nan-time": (lambda w: _target(w, (r"^synop_sparse_ns = .*$", "synop_sparse_ns = nan")),
                 "[constant_sets.testchip.timing] synop_sparse_ns: must be a finite number >= 0, got nan"),
    "integer-beyond-float": (lambda w: _target(w, (r"^synop_sparse_ns = .*$", f"synop_sparse_ns = {10**400}")),
                             "[constant_sets.testchip.timing] synop_sparse_ns: must be a finite number >= 0, got inf"),
    "decay-bits-1000": (lambda w: _target(w, (r"^decay_bits = .*$", "decay_bits = 1000")),
                        "[neuron] decay_bits: must be at most 62"),
    "huge-bias-exp": (lambda w: _target(w, (r"^bias_exp_max = .*$", f"bias_exp_max = {2**62}")),
                      "[neuron] bias_exp_max: must be in [-32, 32]"),
    "huge-weight-exp": (lambda w: _target(w, (r"^weight_exp_min = .*$", "weight_exp_min = -4000")),
                        "[neuron] weight_exp_min: must be in [-32, 32]"),
    "huge-mesh": (lambda w: _target(w, (r"^mesh_cols = .*$", "mesh_cols = 1000000000"),
                                    (r"^mesh_rows = .*$", "mesh_rows = 1000000000")),
                  "[chip] mesh_cols: must be at most 1,024"),
    "mesh-slots": (lambda w: _target(w, (r"^mesh_cols = .*$", "mesh_cols = 1024"), (r"^mesh_rows = .*$",
                                                                                    "mesh_rows = 1024"),
                                     (r"^cores_per_tile = .*$", "cores_per_tile = 2")),
                   "more than 1,048,576 core slots"),
    "huge-chip-grid": (lambda w: _target(w, (r"^chip_cols = .*$", "chip_cols = 5000")),
                       "[system] chip_cols: must be at most 1,024 (chips per grid row), got 5000"),
    "huge-neurons": (lambda w: _target(w, (r"^neurons = .*$", f"neurons = {10**12}")),
                     "[core] neurons: must be at most 16,777,216"),
    "huge-memory": (lambda w: _target(w, (r"^synaptic_memory_bits = .*$", f"synaptic_memory_bits = {2**62}")),
                    "[core] synaptic_memory_bits: must be at most"),
    "string-field": (lambda w: _target(w, (r"^synop_sparse_pj = .*$", 'synop_sparse_pj = "fast"')),
                     "[constant_sets.testchip.energy] synop_sparse_pj: expected a number, got str"),
    "empty": (lambda w: w.write(".toml", ""), "table [target] (name, description) is missing"),
    "binary": (lambda w: w.write(".toml", np.random.default_rng(2).bytes(512)), "not valid TOML"),
    "pickle": (lambda w: w.write(".toml", pickle.dumps(Payload(w.marker))), "not valid TOML"),
    "huge-file": (lambda w: w.write(".toml", "# " + "x" * (2 << 20) + "\n" + TESTCHIP.read_text()),
                  "a target file is a few KB (at most 1,048,576 are read)"),
}
GPUS: dict[str, tuple[str, str, str]] = {
    "huge-tflops": (r"^peak_fp32_tflops = .*$", "peak_fp32_tflops = 1e308", "[compute] peak_fp32_tflops: must be at "
                    "most 1e+06"),
    "zero-bandwidth": (r"^memory_bandwidth_gb_s = .*$", "memory_bandwidth_gb_s = 0.0", "[compute] "
                       "memory_bandwidth_gb_s: must be > 0"),
    "nan-efficiency": (r"^compute_efficiency = .*$", "compute_efficiency = nan",
                       "[compute] compute_efficiency: must be finite"),
    "huge-launch": (r"^kernel_launch_us = .*$", "kernel_launch_us = 1e300", "[compute] kernel_launch_us: must be at "
                    "most 1e+06"),
}


# ---------------------------------------------------------------- the cases

@dataclass
class Case:
    args: list[str]
    fragment: str
    outputs: list[Path] = field(default_factory=list)
    click: bool = False           # a value click's own parameter types refuse (one error line, exit 2)


Builder = Callable[[Work], Case]
CASES: dict[str, Builder] = {}


def _model_case(name: str, command) -> Builder:
    make, fragment = MODEL_FILES[name]

    def build(w: Work) -> Case:
        if name not in w.made:
            w.made[name] = make(w)
        args, outputs = command(w, w.made[name])
        return Case(args, fragment, outputs)
    return build


for _name in MODEL_FILES:
    for _command, _how in MODEL_COMMANDS.items():
        CASES[f"{_command}-model-{_name}"] = _model_case(_name, _how)
for _command, _how in MODEL_COMMANDS.items():
    CASES[f"{_command}-model-missing"] = (
        lambda w, how=_how, cmd=_command: Case(how(w, w.root / "missing.npz")[0],
                                               "no such file" if cmd == "run" else "does not exist",
                                               click=cmd != "run"))
    CASES[f"{_command}-model-directory"] = (
        lambda w, how=_how: Case(how(w, w.root)[0], "is a directory", click=True))


def _target_case(make: Callable[[Work], Path], fragment: str, command: str) -> Builder:
    def build(w: Work) -> Case:
        target = make(w)
        if command == "compile":
            out = w.out()
            return Case(["compile", str(w.graph), "--target", str(target), "--out", str(out)], fragment, [out])
        if command == "run":
            out = w.out()
            return Case(["run", str(w.graph), "--target", str(target), "--steps", "2", "--limit", "2",
                         "--save-spikes", str(out)], fragment, [out])
        return Case(["estimate", str(w.graph), "--target", str(target), "--data", "digits", "--steps", "2",
                     "--limit", "2", "--json"], fragment)
    return build


for _name, (_make, _fragment) in TARGETS.items():
    CASES[f"compile-target-{_name}"] = _target_case(_make, _fragment, "compile")
for _name in ("zero-energies", "huge-energy", "zero-barrier", "huge-mesh", "pickle"):
    CASES[f"estimate-target-{_name}"] = _target_case(*TARGETS[_name], "estimate")
for _name in ("decay-bits-1000", "huge-bias-exp", "binary"):
    CASES[f"run-target-{_name}"] = _target_case(*TARGETS[_name], "run")
CASES["compile-target-unknown-name"] = lambda w: Case(["compile", str(w.graph), "--target", "loihi9"],
                                                      "unknown target 'loihi9'")
CASES["compile-target-missing-file"] = lambda w: Case(["compile", str(w.graph), "--target",
                                                       str(w.root / "nope.toml")], "no such target file")


def _gpu_case(pattern: str, new: str, fragment: str) -> Builder:
    def build(w: Work) -> Case:
        text, n = re.subn(pattern, new, H100.read_text(), count=1, flags=re.M)
        assert n == 1
        return Case(["estimate", str(w.mapping), "--data", "digits", "--steps", "2", "--limit", "2", "--gpu",
                     str(w.write(".toml", text))], fragment)
    return build


for _name, _spec in GPUS.items():
    CASES[f"estimate-gpu-{_name}"] = _gpu_case(*_spec)
CASES["estimate-gpu-empty"] = lambda w: Case(["estimate", str(w.mapping), "--data", "digits", "--steps", "2",
                                              "--gpu", str(w.write(".toml", ""))], "table [gpu]")


# ---------------------------------------------------------------- weights (convert --weights)

def _state(**tensors: torch.Tensor) -> dict:
    from neuromap.frontends import rmp

    torch.manual_seed(0)
    return rmp.build_model("mlp", (1, 8, 8), 10).state_dict() | tensors


def _saved(w: Work, obj, legacy: bool = False) -> Path:
    path = w.path(".pt")
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    return path


def _complex_state(w: Work) -> Path:
    state = _state()
    key = next(k for k, v in state.items() if v.dim() == 2)
    return _saved(w, state | {key: state[key].to(torch.complex64)})


WEIGHTS: dict[str, tuple[Callable[[Work], Path], str]] = {
    "empty": (lambda w: w.write(".pt", b""), "an empty file, not a torch state_dict (torch.save)"),
    "text": (lambda w: w.write(".pt", "weights\n"), "a text file, not a torch state_dict"),
    "npz": (lambda w: w.write(".pt", w.graph.read_bytes()), "a neuromap graph, not a torch state_dict"),
    "hdf5": (lambda w: w.write(".pt", w.nir.read_bytes()), "an HDF5 file, not a torch state_dict"),
    "pickle-payload": (lambda w: w.write(".pt", pickle.dumps(Payload(w.marker))), "not a readable state_dict"),
    "torch-payload": (lambda w: _saved(w, {"w": Payload(w.marker)}), "not a readable state_dict"),
    "truncated": (lambda w: w.write(".pt", w.weights.read_bytes()[:len(w.weights.read_bytes()) // 2]),
                  "a damaged zip archive, not a torch state_dict"),
    "flipped": (lambda w: _flip(w.weights, next(n for n in zipfile.ZipFile(w.weights).namelist()
                                                if n.endswith("data.pkl")), w.path(".pt")),
                "not a readable state_dict"),
    "a-list": (lambda w: _saved(w, [torch.ones(3)]), "expected a state_dict (a dict of tensors), got list"),
    "not-tensors": (lambda w: _saved(w, {"fc.weight": 3}), "state_dict entry 'fc.weight' is a int, not a tensor"),
    "complex": (_complex_state, "holds complex values (torch.complex64); weights must be real"),
    "wrong-shapes": (lambda w: _saved(w, {"w": torch.ones(2)}), "weights do not fit the model"),
    "legacy-pickle-payload": (lambda w: _saved(w, {"w": Payload(w.marker)}, legacy=True),
                              "not a readable state_dict"),
}
for _name, (_make, _fragment) in WEIGHTS.items():
    CASES[f"convert-weights-{_name}"] = (
        lambda w, make=_make, fragment=_fragment: (lambda out: Case(
            ["convert", "--weights", str(make(w)), "-o", str(out)], fragment, [out]))(w.out()))


# ---------------------------------------------------------------- flags

def _file_in_the_way(w: Work) -> Path:
    blocker = w.write(".npz", "a regular file")
    return blocker / "sub" / "out.npz"


def _flag_cases() -> dict[str, Builder]:
    steps = ["--data", "digits", "--limit", "2"]
    return {
        "run-device-banana": lambda w: Case(["run", str(w.mapping), "--device", "banana"],
                                            "--device 'banana': no such device on this machine"),
        "run-device-cuda": lambda w: Case(["run", str(w.mapping), "--device", "cuda:7", "--backend", "torch"],
                                          "--device 'cuda:7': no such device on this machine"),
        "run-steps-1e12": lambda w: Case(["run", str(w.mapping), "--steps", str(10**12), "--limit", "2"],
                                         "--steps 1,000,000,000,000: the run's spike traces"),
        "run-steps-1e12-torch": lambda w: Case(["run", str(w.graph), "--backend", "torch", "--steps", str(10**12)],
                                               "--steps 1,000,000,000,000: the run's spike traces"),
        "estimate-steps-1e12": lambda w: Case(["estimate", str(w.mapping), *steps, "--steps", str(10**12)],
                                              "--steps 1,000,000,000,000: hwsim's traces of one sample"),
        "estimate-steps-spikes": lambda w: Case(["estimate", str(w.graph), "--input-encoding", "spikes", *steps,
                                                 "--steps", "2500000"], "the rate-coded input spikes"),
        "estimate-steps-0": lambda w: Case(["estimate", str(w.mapping), *steps, "--steps", "0"],
                                           "'--steps': 0 is not in the range x>=1", click=True),
        "estimate-steps-negative": lambda w: Case(["estimate", str(w.mapping), *steps, "--steps", "-3"],
                                                  "'--steps': -3 is not in the range x>=1", click=True),
        "estimate-limit-0": lambda w: Case(["estimate", str(w.mapping), "--data", "digits", "--steps", "2",
                                            "--limit", "0"], "'--limit': 0 is not in the range x>=1", click=True),
        "estimate-gpu-batch-0": lambda w: Case(["estimate", str(w.mapping), *steps, "--steps", "2",
                                                "--gpu-batch", "0"], "--gpu-batch must be at least 1, got 0"),
        "estimate-gpu-unknown": lambda w: Case(["estimate", str(w.mapping), *steps, "--steps", "2", "--gpu", "b200"],
                                               "unknown GPU profile 'b200'"),
        "compile-out-under-a-file": lambda w: (lambda out: Case(["compile", str(w.graph), "--out", str(out)],
                                                                "is a file, not a folder", [out]))(_file_in_the_way(w)),
        "compile-out-proc": lambda w: Case(["compile", str(w.graph), "--out", "/proc/neuromap.npz"],
                                           "--out /proc/neuromap.npz: cannot write in /proc"),
        "compile-out-sys": lambda w: Case(["compile", str(w.graph), "--out", "/sys/neuromap/m.npz"],
                                          "--out /sys/neuromap/m.npz: cannot write in /sys"),
        "compile-out-is-a-directory": lambda w: Case(["compile", str(w.graph), "--out", str(w.root)],
                                                     "is a directory", click=True),
        "compile-input-bits-0": lambda w: (lambda out: Case(["compile", str(w.graph), "--input-bits", "0", "--out",
                                                             str(out)], "0-bit payloads requested", [out]))(w.out()),
        "run-save-spikes-under-a-file": lambda w: (lambda out: Case(
            ["run", str(w.mapping), "--save-spikes", str(out), "--steps", "2", "--limit", "2"],
            "--save-spikes", [out]))(_file_in_the_way(w)),
        "run-save-spikes-proc": lambda w: Case(["run", str(w.mapping), "--save-spikes", "/proc/self/s.npz"],
                                               "cannot write in /proc/self"),
        "convert-output-under-a-file": lambda w: (lambda out: Case(["convert", "-o", str(out), "--epochs", "1"],
                                                                   "--out", [out]))(_file_in_the_way(w)),
        "convert-save-weights-proc": lambda w: Case(["convert", "--save-weights", "/proc/w.pt"],
                                                    "--save-weights /proc/w.pt: cannot write in /proc"),
        "convert-plot-sys": lambda w: Case(["convert", "--sweep", "4", "--plot", "/sys/p.png"],
                                           "--plot /sys/p.png: cannot write in /sys"),
        "convert-sweep-0": lambda w: Case(["convert", "--sweep", "0,4"], "--sweep: time steps must be at least 1"),
        "convert-sweep-text": lambda w: Case(["convert", "--sweep", "a,b"], "--sweep: expected comma-separated"),
        "train-out-under-a-file": lambda w: (lambda out: Case(["train", "--out", str(out)], "is a file, not a folder",
                                                              [out]))(_file_in_the_way(w)),
        "train-out-proc": lambda w: Case(["train", "--out", "/proc/net.npz"], "cannot write in /proc"),
        "demo-out-under-a-file": lambda w: (lambda out: Case(["demo", "--out", str(out)], "is a file, not a folder",
                                                             [out]))(_file_in_the_way(w).parent),
        "demo-out-sys": lambda w: Case(["demo", "--out", "/sys/demo"], "--out /sys/demo/summary.json: cannot write"),
        "run-dt-nan": lambda w: Case(["run", str(w.nir), "--dt", "nan", "--steps", "2", "--limit", "2"],
                                     "dt must be finite and > 0, got nan"),
        "compile-dt-negative": lambda w: Case(["compile", str(w.nir), "--dt", "-1e-4"],
                                              "dt must be finite and > 0, got -0.0001"),
        "estimate-dt-inf": lambda w: Case(["estimate", str(w.nir), *steps, "--steps", "2", "--dt", "inf"],
                                          "dt must be finite and > 0, got inf"),
        # values click's own types refuse: one error line naming the flag and the command's --help, exit 2
        "run-seed-beyond-64-bits": lambda w: Case(["run", str(w.mapping), "--seed", str(2**70), "--encoding",
                                                   "poisson"], "'--seed': 1180591620717411303424 is not in the range",
                                                  click=True),
        "compile-seed-negative": lambda w: Case(["compile", str(w.graph), "--seed", "-1"], "'--seed': -1 is not in",
                                                click=True),
        "train-threads-1e9": lambda w: Case(["train", "--threads", str(10**9)], "'--threads': 1000000000 is not in "
                                            "the range 1<=x<=1024", click=True),
        "run-steps-0": lambda w: Case(["run", str(w.mapping), "--steps", "0"], "'--steps': 0 is not in the range",
                                      click=True),
        "run-limit-negative": lambda w: Case(["run", str(w.mapping), "--limit", "-1"],
                                             "'--limit': -1 is not in the range", click=True),
        "run-steps-text": lambda w: Case(["run", str(w.mapping), "--steps", "many"], "'--steps': 'many' is not a "
                                         "valid integer", click=True),
        "train-batch-size-0": lambda w: Case(["train", "--batch-size", "0"], "'--batch-size': 0 is not in the range",
                                             click=True),
        "train-batch-size-text": lambda w: Case(["train", "--batch-size", "1e3"], "'--batch-size': '1e3' is not",
                                                click=True),
        "train-steps-0": lambda w: Case(["train", "--steps", "0"], "'--steps': 0 is not in the range", click=True),
        "demo-steps-negative": lambda w: Case(["demo", "--steps", "-1"], "'--steps': -1 is not in the range",
                                              click=True),
        "compile-placement-bogus": lambda w: Case(["compile", str(w.graph), "--placement", "best"],
                                                  "'--placement'", click=True),
        "run-encoding-bogus": lambda w: Case(["run", str(w.mapping), "--encoding", "morse"], "'--encoding'",
                                             click=True),
    }


CASES.update(_flag_cases())


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Work:
    return Work(tmp_path_factory.mktemp("corpus"))


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def test_the_corpus_is_big_enough():
    assert len(CASES) >= 150, len(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_bad_input_is_one_error_line_and_nothing_else(name, work, monkeypatch):
    monkeypatch.setenv(BUDGET_ENV, str(BUDGET))
    case = CASES[name](work)
    before = _peak_rss()
    res = CliRunner().invoke(main, case.args)
    grown = _peak_rss() - before
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    assert "Traceback" not in res.output and "internal error" not in res.output, res.output
    errors = [line for line in res.stderr.splitlines() if line.startswith("neuromap: error: ")]
    assert len(errors) == 1, res.stderr
    assert case.fragment in errors[0], (case.fragment, errors[0])
    if case.click:  # click's usage errors come out in the one format too, naming the command's --help
        assert errors[0].endswith(f"(see 'neuromap {case.args[0]} --help')"), errors[0]
    assert not [line for line in res.stderr.splitlines() if line.startswith("neuromap: ")
                and not line.startswith(("neuromap: error: ", "neuromap: warning: "))], res.stderr
    assert not res.stdout.strip().startswith("{"), "no --json figures after an error"
    for out in case.outputs:
        assert not out.exists(), out
        if out.parent.is_dir() and out.parent.parent.name == "outs":
            assert not list(out.parent.iterdir()), list(out.parent.iterdir())
    assert not work.marker.exists(), "a pickle payload ran"
    assert grown < RSS_BOUND, f"peak memory grew by {grown:,} bytes"


# ---------------------------------------------------------------- under an address-space limit

ADDRESS_SPACE = 6 << 30     # torch and the CLI need ~3 GiB of address space; the bombs ask for far more


def _limited(args: list[str]) -> subprocess.CompletedProcess:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))

    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-c", "from neuromap.cli import main; main()", *args], env=env,
                          preexec_fn=limit, capture_output=True, text=True, timeout=300, cwd=ROOT)


@pytest.mark.parametrize("name, fragment", [
    ("zip-bomb-4g", "this command may allocate (half the memory available"),
    ("nir-huge-dataset", "declares 17,179,869,184 bytes stored in 0"),
    ("steps", "--steps 1,000,000,000,000: the run's spike traces"),
])
def test_bombs_are_refused_under_an_address_space_limit(name, fragment, work):
    if name == "zip-bomb-4g":
        # declared 8 GiB in the zip's directory: more than the limit leaves, whatever the machine's memory
        model = work.path(".npz")
        with zipfile.ZipFile(model, "w", zipfile.ZIP_STORED) as zf:
            zf.writestr("__graph__.npy", npz_member(graph_to_arrays(_graph())["__graph__"]))
        data = bytearray(model.read_bytes())
        _declare_size(data, "__graph__.npy", 8 << 30)
        model.write_bytes(bytes(data))
        args = ["compile", str(model)]
    elif name == "nir-huge-dataset":
        args = ["compile", str(_nir_edit(work, _huge_dataset))]
    else:
        args = ["run", str(work.mapping), "--steps", str(10**12), "--limit", "2"]
    res = _limited(args)
    assert res.returncode == 2, res.stderr
    (line,) = res.stderr.splitlines()
    assert line.startswith("neuromap: error: ") and fragment in line, line


def _declare_size(data: bytearray, member: str, size: int) -> None:
    """Make the central directory of the zip in ``data`` declare ``size`` uncompressed bytes for ``member``
    (a zip64 extra field, as a real 8 GiB member has)."""
    name = member.encode()
    at = data.rindex(b"PK\x01\x02")
    assert data[at + 46:at + 46 + len(name)] == name
    extra_len = int.from_bytes(data[at + 30:at + 32], "little")
    assert extra_len == 0
    compressed = int.from_bytes(data[at + 20:at + 24], "little")
    zip64 = (1).to_bytes(2, "little") + (16).to_bytes(2, "little") + size.to_bytes(8, "little") + \
        compressed.to_bytes(8, "little")
    data[at + 20:at + 28] = (0xFFFFFFFF).to_bytes(4, "little") * 2
    data[at + 30:at + 32] = len(zip64).to_bytes(2, "little")
    end = at + 46 + len(name)
    data[end:end] = zip64
    eocd = data.rindex(b"PK\x05\x06")
    size_at = eocd + 12
    data[size_at:size_at + 4] = (int.from_bytes(data[size_at:size_at + 4], "little") + len(zip64)).to_bytes(4,
                                                                                                          "little")
