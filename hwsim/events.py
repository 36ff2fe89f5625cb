"""Event counts per core and per time step: what the energy and latency estimators consume.

Every count is attributed to the step in which the spike is sent (its synaptic work, messages and hops
happen within that step; the result reaches the target neurons at the next step, the one-step delay).
Arrays are (B, T, C) int64, C = the network's cores in ``QuantNetwork.cores`` order (``core_ids``).

* ``synops`` — synaptic operations by destination core: for each spike (or nonzero graded payload),
  one per synapse of the sending neuron onto a neuron of that core (recurrent projections included:
  every count is per source, over all of its projections).
* ``synops_sparse`` / ``synops_conv`` — the part of ``synops`` that the destination core stores in the
  sparse or the convolutional (shared-kernel) synapse format; the rest is dense (``hwsim.synapse_formats``).
* ``spikes`` — spikes sent, by the sending neuron's core.
* ``messages_out`` / ``messages_in`` — core-to-core spike messages, by sending / receiving core: one per
  spike per destination core that holds at least one target of the neuron (the axon level: a message
  fans out to its synapses inside the destination core). A core's own neurons count too (a message that
  stays on its core, zero hops).
* ``input_messages`` — messages from the network's input ports (off-mesh), by receiving core.
* ``hops`` / ``chip_crossings`` — by sending core: for each message, the Manhattan distance between the
  two cores' (x, y) as given in ``Core``, and 1 where the two cores are on different chips.
* ``active_neurons`` — neurons whose update reads nonzero data: input a[t] != 0, or u[t-1] != 0, or
  v[t-1] != 0 (v[0] = v_init), or a nonzero bias. The others keep an all-zero state (Loihi's inactive
  compartments). ``neurons`` (C,) is how many neurons each core updates every step.
* ``traffic`` (C, C) — messages from core i to core j over the whole run, summed over the batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from hwsim.netdesc import QuantNetwork
from hwsim.synapse import SynapseOp

PER_STEP = ("synops", "synops_sparse", "synops_conv", "spikes", "messages_out", "messages_in", "input_messages",
            "hops", "chip_crossings", "active_neurons")


@dataclass
class EventCounts:
    core_ids: tuple[int, ...]
    neurons: np.ndarray          # (C,)
    traffic: np.ndarray          # (C, C)
    synops: np.ndarray           # (B, T, C) each of the per-step counts below
    synops_sparse: np.ndarray
    synops_conv: np.ndarray
    spikes: np.ndarray
    messages_out: np.ndarray
    messages_in: np.ndarray
    input_messages: np.ndarray
    hops: np.ndarray
    chip_crossings: np.ndarray
    active_neurons: np.ndarray

    def per_sample(self) -> dict[str, float]:
        """Each per-step count summed over steps and cores, averaged over the samples."""
        return {name: float(getattr(self, name).sum(axis=(1, 2)).mean()) for name in PER_STEP}

    @staticmethod
    def concatenate(parts: list[EventCounts]) -> EventCounts:
        """Counts of consecutive batch chunks as one."""
        first = parts[0]
        joined = {name: np.concatenate([getattr(p, name) for p in parts]) for name in PER_STEP}
        return EventCounts(first.core_ids, first.neurons, sum((p.traffic for p in parts[1:]), first.traffic), **joined)


class EventTables:
    """Per source (input port or population), a matrix M (n_src, K) such that spikes (R, n_src) @ M gives
    the per-step counts the source causes; M's columns are blocks of C: for a population source
    [synops | messages_in | spikes | messages_out | hops | chip_crossings], for an input port
    [synops | input_messages]."""

    def __init__(self, qnet: QuantNetwork, device: torch.device) -> None:
        self.core_ids = tuple(c.index for c in qnet.cores)
        column = {cid: i for i, cid in enumerate(self.core_ids)}
        n_cores = len(self.core_ids)
        xy = np.array([(c.x, c.y) for c in qnet.cores], dtype=np.int64).reshape(n_cores, 2)
        chip = np.array([c.chip for c in qnet.cores], dtype=np.int64)
        self.core_col = {p.name: np.array([column[int(c)] for c in p.core]) for p in qnet.populations}
        self.neurons = np.bincount(np.concatenate(list(self.core_col.values())), minlength=n_cores)
        self.bias_nonzero = {p.name: torch.as_tensor(p.bias != 0, device=device) for p in qnet.populations}
        self.core_index = {name: torch.as_tensor(cols, device=device) for name, cols in self.core_col.items()}
        self.n_cores = n_cores
        self.masks: dict[str, sp.csr_matrix] = {}
        self.ops: dict[str, SynapseOp] = {}
        for name, size in [*((i.name, i.size) for i in qnet.inputs), *((p.name, p.size) for p in qnet.populations)]:
            syn = sp.csr_matrix((size, n_cores), dtype=np.int64)
            for pr in qnet.projections:
                if pr.src == name:
                    w = pr.weights.tocoo()
                    dst_col = self.core_col[pr.dst][w.row]
                    syn = syn + sp.csr_matrix((np.ones(w.nnz, np.int64), (w.col, dst_col)), shape=(size, n_cores))
            mask = (syn > 0).astype(np.int64).tocsr()
            self.masks[name] = mask
            if name in self.core_col:
                src = sp.csr_matrix((np.ones(size, np.int64), (np.arange(size), self.core_col[name])),
                                    shape=(size, n_cores))
                m = mask.tocoo()
                src_col = self.core_col[name][m.row]
                dist = np.abs(xy[src_col] - xy[m.col]).sum(axis=1)
                per_neuron = np.zeros((3, size), np.int64)
                # numpy's stubs type ufunc.at's index as one integer array; a (slice, rows) tuple is valid numpy
                np.add.at(per_neuron, (slice(None), m.row), np.stack([np.ones_like(dist), dist,  # type: ignore[arg-type]
                                                                      chip[src_col] != chip[m.col]]))
                blocks = [syn, mask, src] + [src.multiply(per_neuron[k][:, None]) for k in range(3)]
            else:
                blocks = [syn, mask]
            table = sp.hstack(blocks).tocsr()
            # spikes (R, n_src) @ table == (table^T @ spikes^T)^T: the same exact product as a projection's
            self.ops[name] = SynapseOp(table.T.tocsr(), 1, device)

    def source_counts(self, name: str, out: torch.Tensor) -> dict[str, torch.Tensor]:
        """Counts caused by one source's outputs ``out`` (T, B, n) (spikes, or graded payloads)."""
        steps, batch, n = out.shape
        active = out if out.dtype == torch.bool else out != 0
        c = self.n_cores
        counts = self.ops[name].exact(active.reshape(-1, n)).view(steps, batch, -1)
        keys: tuple[str, ...] = (("synops", "messages_in", "spikes", "messages_out", "hops", "chip_crossings")
                                 if name in self.core_col else ("synops", "input_messages"))
        return {key: counts[..., k * c:(k + 1) * c] for k, key in enumerate(keys)}

    def traffic(self, name: str, out: torch.Tensor) -> np.ndarray:
        """(C, C) messages sent by a population's spikes ``out`` (T, B, n), summed over steps and batch."""
        per_neuron = out.sum(dim=(0, 1)).cpu().numpy().astype(np.int64)
        src = sp.csr_matrix((per_neuron, (self.core_col[name], np.arange(per_neuron.size))),
                            shape=(self.n_cores, per_neuron.size))
        return np.asarray((src @ self.masks[name]).todense())

    def input_or_bias(self, name: str, a: torch.Tensor) -> torch.Tensor:
        """(T, B, n) bool: neurons of population ``name`` with input a[t] != 0 or a nonzero bias."""
        return (a != 0) | self.bias_nonzero[name]

    def active_neurons(self, name: str, active: torch.Tensor, u: torch.Tensor, v: torch.Tensor,
                       v_init: torch.Tensor) -> torch.Tensor:
        """(T, B, C) neurons of population ``name`` whose update at step t reads nonzero data, given
        ``input_or_bias`` and the states u, v after every step."""
        active[0] |= v_init != 0
        active[1:] |= (u[:-1] != 0) | (v[:-1] != 0)
        counts = torch.zeros((*active.shape[:2], self.n_cores), dtype=torch.int64, device=active.device)
        return counts.index_add_(2, self.core_index[name], active.to(torch.int64))

