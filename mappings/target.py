"""Typed, validated hardware targets loaded from declarative TOML files.

A target file has one table per dataclass below (``[chip]``, ``[system]``, ``[core]``, ``[synapses]``,
``[neuron]``) plus ``[target]`` (name, description), and the estimator's constant sets (``[estimator]``,
``[constant_sets.NAME]``, parsed by ``mappings.constant_sets``). Every field is required,
unknown fields are rejected (a typo must not silently fall back to a default), and every value is
checked for type and range on load, so a broken file fails with the table and field named.
"""
from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mappings.constant_sets import ConstantSet, parse_constant_sets
from mappings.errors import TargetError

TARGETS_DIR = Path(__file__).with_name("targets")
# Synapse-memory layouts a target may name; neuromap.passes.synapse_memory implements each.
SYNAPSE_MEMORY_MODELS = ("loihi_blocks",)


def _positive(x: float) -> bool:
    return x > 0


def _non_negative(x: float) -> bool:
    return x >= 0


@dataclass(frozen=True)
class Chip:
    """One chip: ``cores`` neuro-cores on a ``mesh_cols`` x ``mesh_rows`` mesh of routers (tiles),
    ``cores_per_tile`` cores sharing each router (a spike between them makes no hop)."""

    cores: int
    mesh_cols: int
    mesh_rows: int
    cores_per_tile: int


@dataclass(frozen=True)
class System:
    """How many chips a system may hold, arranged on a ``chip_cols`` x ``chip_rows`` grid; the mesh
    continues across chip borders, so a hop between neighbouring chips is one more tile hop."""

    max_chips: int
    chip_cols: int
    chip_rows: int


@dataclass(frozen=True)
class Core:
    """Per-core limits: compartments, synaptic memory, input axons (fan-in slots), output axons."""

    neurons: int
    synaptic_memory_bits: int
    input_axons: int
    output_axons: int


@dataclass(frozen=True)
class Synapses:
    """How a synapse costs synaptic memory: the layout ``memory_model`` names, with these parameters.

    ``loihi_blocks``: each input axon owns a synapse list on the destination core, stored in blocks of at most
    ``block_synapses`` entries; a block costs ``block_header_bits`` plus its entries, rounded up to
    whole ``word_bits`` words. An entry is ``weight_bits`` (dense: one entry per neuron of the target
    range) plus a compartment index (sparse: one entry per synapse; the index needs
    ceil(log2(neurons per core)) bits, at least ``min_index_bits``). With ``shared_conv_weights`` a
    convolution's kernel is stored once per core (``weight_bits`` per kernel weight) and reached through
    population axons: one input axon per source pixel position, the channel travelling with the spike,
    and one ``word_bits`` pointer word per axon.
    """

    weight_bits: int
    word_bits: int
    block_synapses: int
    block_header_bits: int
    min_index_bits: int
    shared_conv_weights: bool
    memory_model: str


@dataclass(frozen=True)
class Neuron:
    """Fixed-point formats of the neuron state and parameters (docs/architecture.md, Fixed-point step)."""

    state_bits: int
    activation_shift: int
    vth_bits: int
    decay_bits: int
    bias_mant_bits: int
    bias_exp_min: int
    bias_exp_max: int
    weight_exp_min: int
    weight_exp_max: int
    graded_spike_bits: int


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    chip: Chip
    system: System
    core: Core
    synapses: Synapses
    neuron: Neuron
    source: str  # the file it was loaded from
    default_constant_set: str
    constant_sets: dict[str, ConstantSet]

    @property
    def max_cores(self) -> int:
        return self.chip.cores * self.system.max_chips

    @property
    def index_bits(self) -> int:
        """Bits of a sparse synapse's compartment index."""
        return max(self.synapses.min_index_bits, math.ceil(math.log2(max(self.core.neurons, 2))))

    def constant_set(self, name: str | None = None) -> ConstantSet:
        """The estimator's constant set ``name`` (default: the target's ``[estimator] default_set``)."""
        chosen = self.default_constant_set if name is None else name
        if chosen not in self.constant_sets:
            raise TargetError(f"target {self.name!r}: no constant set {chosen!r} (known: "
                              f"{', '.join(self.constant_sets)})", field="--constant-set", value=chosen,
                              allowed=tuple(self.constant_sets))
        return self.constant_sets[chosen]

    def to_dict(self) -> dict[str, Any]:
        """The target as the tables of its file (``parse_target`` reads it back), plus name, description, source."""
        hardware = {table: dataclasses.asdict(getattr(self, table)) for table in _CLASSES}
        return {"name": self.name, "description": self.description, "source": self.source, **hardware,
                "estimator": {"default_set": self.default_constant_set},
                "constant_sets": {name: c.to_document() for name, c in self.constant_sets.items()}}


# Per table: field -> (type, check, what the check means). Integers must be ints (not bools).
_RULES: dict[str, dict[str, tuple[type, Any, str]]] = {
    "chip": {"cores": (int, _positive, "> 0"), "mesh_cols": (int, _positive, "> 0"),
             "mesh_rows": (int, _positive, "> 0"), "cores_per_tile": (int, _positive, "> 0")},
    "system": {"max_chips": (int, _positive, "> 0"), "chip_cols": (int, _positive, "> 0"),
               "chip_rows": (int, _positive, "> 0")},
    "core": {"neurons": (int, _positive, "> 0"), "synaptic_memory_bits": (int, _positive, "> 0"),
             "input_axons": (int, _positive, "> 0"), "output_axons": (int, _positive, "> 0")},
    "synapses": {"weight_bits": (int, lambda x: 1 <= x <= 9, "in [1, 9]"),
                 "word_bits": (int, _positive, "> 0"), "block_synapses": (int, _positive, "> 0"),
                 "block_header_bits": (int, _non_negative, ">= 0"),
                 "min_index_bits": (int, _non_negative, ">= 0"), "shared_conv_weights": (bool, None, ""),
                 "memory_model": (str, lambda x: x in SYNAPSE_MEMORY_MODELS,
                                  f"one of {', '.join(SYNAPSE_MEMORY_MODELS)}")},
    "neuron": {"state_bits": (int, lambda x: 2 <= x <= 32, "in [2, 32]"),
               "activation_shift": (int, _non_negative, ">= 0"),
               "vth_bits": (int, _positive, "> 0"), "decay_bits": (int, _positive, "> 0"),
               "bias_mant_bits": (int, lambda x: x >= 2, ">= 2"),
               "bias_exp_min": (int, None, ""), "bias_exp_max": (int, None, ""),
               "weight_exp_min": (int, None, ""), "weight_exp_max": (int, None, ""),
               "graded_spike_bits": (int, lambda x: 0 <= x <= 32, "in [0, 32]")},
}
_CLASSES = {"chip": Chip, "system": System, "core": Core, "synapses": Synapses, "neuron": Neuron}
# the estimator's tables, parsed by mappings.constant_sets
_ESTIMATOR_TABLES = ["estimator", "constant_sets"]


def check_head(doc: dict, head: str, tables: list[str], where: str) -> dict[str, str]:
    """The ``[head]`` table (name, description) of a description file, after checking that no unknown table is there."""
    table = doc.get(head)
    if not isinstance(table, dict):
        raise TargetError(f"{where}: table [{head}] (name, description) is missing", path=where, field=f"[{head}]")
    for name in ("name", "description"):
        if not isinstance(table.get(name), str) or not table.get(name):
            raise TargetError(f"{where}: [{head}] {name}: missing or not a non-empty string", path=where,
                              field=f"[{head}] {name}", value=table.get(name))
    unknown = sorted(set(doc) - set(tables) - {head})
    if unknown:
        raise TargetError(f"{where}: [{unknown[0]}]: unknown table (known: {head}, {', '.join(tables)})", path=where,
                          field=f"[{unknown[0]}]", allowed=(head, *tables))
    return table


def check_table(doc: dict, table: str, where: str, rules: dict[str, tuple]) -> dict[str, Any]:
    """One table's fields, each (type, check, meaning of the check) in ``rules``; the first problem names the field."""
    raw = doc.get(table)
    if raw is None:
        raise TargetError(f"{where}: table [{table}] is missing", path=where, field=f"[{table}]")
    if not isinstance(raw, dict):
        raise TargetError(f"{where}: [{table}] must be a table", path=where, field=f"[{table}]", value=raw)
    unknown = sorted(set(raw) - set(rules))
    if unknown:
        raise TargetError(f"{where}: [{table}] {unknown[0]}: unknown field (known: {', '.join(rules)})", path=where,
                          field=f"[{table}] {unknown[0]}", allowed=tuple(rules))
    values = {}
    for name, (kind, check, meaning) in rules.items():
        if name not in raw:
            raise TargetError(f"{where}: [{table}] {name}: missing", path=where, field=f"[{table}] {name}")
        value = raw[name]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise TargetError(f"{where}: [{table}] {name}: expected {kind.__name__}, got {type(value).__name__} "
                              f"({value!r})", path=where, field=f"[{table}] {name}", value=value)
        if kind is float and not math.isfinite(value):
            raise TargetError(f"{where}: [{table}] {name}: must be finite, got {value!r}", path=where,
                              field=f"[{table}] {name}", value=value)
        if check is not None and not check(value):
            raise TargetError(f"{where}: [{table}] {name}: must be {meaning}, got {value!r}", path=where,
                              field=f"[{table}] {name}", value=value, allowed=meaning)
        values[name] = value
    return values


def _consistency(t: Target, where: str) -> None:
    """Cross-field rules: impossible combinations fail on load, naming the fields."""
    c = t.chip
    if c.mesh_cols * c.mesh_rows * c.cores_per_tile < c.cores:
        raise TargetError(f"{where}: [chip] cores: {c.cores} cores do not fit a {c.mesh_cols} x {c.mesh_rows} mesh "
                          f"with {c.cores_per_tile} cores per tile", path=where, field="[chip] cores", value=c.cores,
                          allowed=c.mesh_cols * c.mesh_rows * c.cores_per_tile)
    s = t.system
    if s.chip_cols * s.chip_rows < s.max_chips:
        raise TargetError(f"{where}: [system] max_chips: {s.max_chips} chips do not fit a {s.chip_cols} x "
                          f"{s.chip_rows} chip grid", path=where, field="[system] max_chips", value=s.max_chips,
                          allowed=s.chip_cols * s.chip_rows)
    n = t.neuron
    for lo, hi in (("bias_exp_min", "bias_exp_max"), ("weight_exp_min", "weight_exp_max")):
        if getattr(n, lo) > getattr(n, hi):
            raise TargetError(f"{where}: [neuron] {lo}: {getattr(n, lo)} exceeds {hi} = {getattr(n, hi)}", path=where,
                              field=f"[neuron] {lo}", value=getattr(n, lo), allowed=getattr(n, hi))
    if n.vth_bits + n.activation_shift > n.state_bits:
        raise TargetError(f"{where}: [neuron] vth_bits: {n.vth_bits} + activation_shift {n.activation_shift} "
                          f"exceeds state_bits {n.state_bits}", path=where, field="[neuron] vth_bits", value=n.vth_bits,
                          allowed=n.state_bits - n.activation_shift)
    syn = t.synapses
    entry = syn.weight_bits + t.index_bits
    if syn.block_header_bits + entry > syn.word_bits * syn.block_synapses:
        raise TargetError(f"{where}: [synapses] block_synapses: a block cannot hold even one synapse", path=where,
                          field="[synapses] block_synapses", value=syn.block_synapses)
    if syn.word_bits > t.core.synaptic_memory_bits:
        raise TargetError(f"{where}: [core] synaptic_memory_bits: smaller than one {syn.word_bits}-bit word",
                          path=where, field="[core] synaptic_memory_bits", value=t.core.synaptic_memory_bits,
                          allowed=syn.word_bits)


def parse_target(doc: dict, where: str) -> Target:
    """A Target from a parsed TOML document; ``where`` names the file in messages."""
    head = check_head(doc, "target", [*_RULES, *_ESTIMATOR_TABLES], where)
    parts = {table: cls(**check_table(doc, table, where, _RULES[table])) for table, cls in _CLASSES.items()}
    hardware = Target(name=head["name"], description=head["description"], source=where, default_constant_set="",
                      constant_sets={}, **parts)
    _consistency(hardware, where)
    # the barrier tables must reach a whole chip: checked once the chip is known to be consistent
    default, sets = parse_constant_sets(doc, where, hardware.chip.mesh_cols * hardware.chip.mesh_rows)
    return dataclasses.replace(hardware, default_constant_set=default, constant_sets=sets)


def available_targets() -> list[str]:
    """Names of the targets shipped with neuromap."""
    return sorted(p.stem for p in TARGETS_DIR.glob("*.toml"))


def read_toml(name_or_path: str | Path, shipped: Path, what: str) -> tuple[dict, Path]:
    """The TOML document of a shipped description by name (a file in ``shipped``) or of a user's file by path."""
    text = str(name_or_path)
    path = Path(text)
    if not (text.endswith(".toml") or path.is_file()):
        path = shipped / f"{text}.toml"
        if not path.is_file():
            names = sorted(p.stem for p in shipped.glob("*.toml"))
            raise TargetError(f"unknown {what} {text!r} (shipped: {', '.join(names)}; or give the path of a "
                              f".toml file)", value=text, allowed=tuple(names))
    if not path.is_file():
        raise TargetError(f"{path}: no such {what} file", path=str(path))
    try:
        return tomllib.loads(path.read_text(encoding="utf-8")), path
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise TargetError(f"{path}: not valid TOML ({exc})", path=str(path)) from None


def load_target(name_or_path: str | Path | Target) -> Target:
    """Load a shipped target by name ("loihi1", "loihi2", "testchip") or a user's TOML file by path; a Target
    is returned as it is."""
    if isinstance(name_or_path, Target):
        return name_or_path
    doc, path = read_toml(name_or_path, TARGETS_DIR, "target")
    return parse_target(doc, str(path))
