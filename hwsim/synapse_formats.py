"""Synaptic ops by the format the destination core stores them in: what the estimator prices per format.

A core stores each incoming projection's synapses dense, sparse or as a shared convolution kernel; the
compiler's partition chooses per (projection, core) and says so in ``QuantNetwork.meta["synapse_formats"]``
= {projection name: {core index: "dense" | "sparse" | "conv"}} (``neuromap.mapping.Mapping.netdesc``). A
projection or core it does not name is dense (a hand-built network names none). ``FormatTables`` counts,
per step and destination core, the sparse and conv synaptic ops with the same exact product as the other
event counts (``hwsim.events``); dense is ``synops`` minus the two.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from hwsim.netdesc import NetDescError, QuantNetwork
from hwsim.synapse import SynapseOp

SYNAPSE_FORMATS = ("dense", "sparse", "conv")
COUNTED = ("sparse", "conv")  # the formats counted here; dense is the rest of synops


def _formats(qnet: QuantNetwork) -> dict[str, dict[int, str]]:
    given = qnet.meta.get("synapse_formats", {})
    names = {pr.name for pr in qnet.projections}
    for name, per_core in given.items():
        if name not in names:
            raise NetDescError(f"synapse_formats: no projection {name!r} in the network", node=name,
                               field="synapse_formats")
        unknown = sorted({f for f in per_core.values() if f not in SYNAPSE_FORMATS})
        if unknown:
            raise NetDescError(f"projection {name!r}: synapse format {unknown[0]!r} is not one of "
                               f"{', '.join(SYNAPSE_FORMATS)}", node=name, field="synapse_formats", value=unknown[0],
                               allowed=SYNAPSE_FORMATS)
    return given


class FormatTables:
    """Per source that reaches a core storing sparse or conv synapses, a (2C, n_src) matrix whose product with
    the source's activity gives [synops_sparse | synops_conv] per destination core."""

    def __init__(self, qnet: QuantNetwork, device: torch.device) -> None:
        column = {c.index: i for i, c in enumerate(qnet.cores)}
        self.n_cores = len(qnet.cores)
        core_col = {p.name: np.array([column[int(c)] for c in p.core]) for p in qnet.populations}
        formats = _formats(qnet)
        sizes = {**{i.name: i.size for i in qnet.inputs}, **{p.name: p.size for p in qnet.populations}}
        tables: dict[str, sp.csr_matrix] = {}
        for pr in qnet.projections:
            per_core = formats.get(pr.name, {})
            w = pr.weights.tocoo()
            dst_col = core_col[pr.dst][w.row]
            for k, fmt in enumerate(COUNTED):
                cols = [column[int(c)] for c, f in per_core.items() if f == fmt]
                sel = np.isin(dst_col, cols)
                if sel.any():
                    part = sp.csr_matrix((np.ones(int(sel.sum()), np.int64), (k * self.n_cores + dst_col[sel],
                                                                               w.col[sel])),
                                         shape=(len(COUNTED) * self.n_cores, sizes[pr.src]))
                    tables[pr.src] = tables[pr.src] + part if pr.src in tables else part
        self.ops = {name: SynapseOp(table.tocsr(), 1, device) for name, table in tables.items()}

    def counts(self, name: str, out: torch.Tensor) -> dict[str, torch.Tensor]:
        """``synops_sparse`` and ``synops_conv`` (T, B, C) caused by a source's outputs ``out`` (T, B, n); none
        for a source whose synapses are all dense."""
        op = self.ops.get(name)
        if op is None:
            return {}
        steps, batch, n = out.shape
        active = out if out.dtype == torch.bool else out != 0
        counts = op.exact(active.reshape(-1, n)).view(steps, batch, -1)
        c = self.n_cores
        return {f"synops_{fmt}": counts[..., k * c:(k + 1) * c] for k, fmt in enumerate(COUNTED)}
