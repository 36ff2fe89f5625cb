"""GPU profiles: the conventional reference a neuromorphic estimate is compared with.

A profile file (``mappings/gpus/*.toml``, or a user's file by path) has ``[gpu]`` (name, description),
``[compute]`` (peak fp32 throughput, DRAM bandwidth, L2 size, TDP, per-kernel launch overhead) and
``[energy]`` (per-operation energies of the arithmetic/memory model). Every field is required and
checked on load; unknown fields are rejected, as for chip targets (``mappings.target``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mappings.target import check_head, check_table, read_toml

GPUS_DIR = Path(__file__).with_name("gpus")


@dataclass(frozen=True)
class GpuProfile:
    """One GPU. Throughput in TFLOP/s (fp32, non-tensor), bandwidth in GB/s, L2 in MB (10^6 bytes),
    TDP in W, launch overhead in microseconds per kernel; energies in pJ (fp32 MAC, fp32 add, one
    32-bit DRAM word)."""

    name: str
    description: str
    peak_fp32_tflops: float
    memory_bandwidth_gb_s: float
    l2_cache_mb: float
    tdp_w: float
    kernel_launch_us: float
    fp32_mac_pj: float
    fp32_add_pj: float
    dram_word_pj: float
    source: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_FIELDS = {
    "compute": ("peak_fp32_tflops", "memory_bandwidth_gb_s", "l2_cache_mb", "tdp_w", "kernel_launch_us"),
    "energy": ("fp32_mac_pj", "fp32_add_pj", "dram_word_pj"),
}
_MAY_BE_ZERO = {"kernel_launch_us"}
# Far above any GPU built (an H200: 67 TFLOP/s, 4.8 TB/s, 50 MB L2, 700 W): beyond them a typo, and estimates of inf
_MAXIMA = {"peak_fp32_tflops": (1e6, "TFLOP/s"), "memory_bandwidth_gb_s": (1e7, "GB/s"), "l2_cache_mb": (1e6, "MB"),
           "tdp_w": (1e5, "W"), "kernel_launch_us": (1e6, "us per kernel"), "fp32_mac_pj": (1e6, "pJ per MAC"),
           "fp32_add_pj": (1e6, "pJ per add"), "dram_word_pj": (1e6, "pJ per word")}
_RULE = (float, lambda x: x > 0, "> 0")
_RULE_ZERO_OK = (float, lambda x: x >= 0, ">= 0")


def parse_gpu(doc: dict, where: str) -> GpuProfile:
    """A GpuProfile from a parsed TOML document; ``where`` names the file in messages."""
    head = check_head(doc, "gpu", list(_FIELDS), where)
    values = {k: v for table, names in _FIELDS.items()
              for k, v in check_table(doc, table, where, {n: _RULE_ZERO_OK if n in _MAY_BE_ZERO else _RULE
                                                          for n in names}, _MAXIMA).items()}
    return GpuProfile(name=head["name"], description=head["description"], source=where, **values)


def available_gpus() -> list[str]:
    """Names of the GPU profiles shipped with neuromap."""
    return sorted(p.stem for p in GPUS_DIR.glob("*.toml"))


def load_gpu(name_or_path: str | Path) -> GpuProfile:
    """A shipped GPU profile by name ("h100", "a100", ...) or a user's TOML file by path."""
    doc, path = read_toml(name_or_path, GPUS_DIR, "GPU profile")
    return parse_gpu(doc, str(path))
