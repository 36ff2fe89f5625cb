"""What NIR import and export (``neuromap.ir.nir_io``) share with the neuron models' own NIR mappings
(``neuromap.neurons``): the metadata key prefix, the import options and the numeric field check."""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from neuromap.errors import GraphError

PREFIX = "neuromap."


@dataclasses.dataclass(frozen=True)
class NirOptions:
    """``from_nir``'s options, a framework preset's already applied (``neuromap.ir.presets``): the Euler step
    (None: the file does not say and nobody did), per spiking node or for all the reset and its timing as
    passed, the preset's values for the nodes they leave open, how the input gain is read and the text of
    the framework's known time-constant bug."""

    dt: float | None
    reset: str | Mapping[str, str] | None
    reset_timing: str | Mapping[str, str] | None
    preset_reset: str | None = None
    preset_reset_timing: str | None = None
    input_gain: str = "nir"
    decay: str = "euler"
    tau_bug: str = ""
    framework: str | None = None
    batch_dim: bool = False


def numeric(value: Any, name: str, field: str) -> np.ndarray:
    """A NIR field as a finite float64 array; the error names the node and the field."""
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise GraphError(f"node {name!r}: {field} is not numeric ({type(value).__name__})", node=name,
                         field=field) from None
    if not np.isfinite(arr).all():
        raise GraphError(f"node {name!r}: {field} holds NaN or inf", node=name, field=field)
    return arr
