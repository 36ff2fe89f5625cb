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
* ``input_messages`` — messages from the network's input ports (off-mesh), by receiving core; a bias axon's
  (an always-on port's) are on-chip ``messages_in``.
* ``payload_bits`` — the payload bits those messages carry, by receiving core: ``graded_bits`` per message of a
  graded input port (``InputPort.graded_bits``, the connection's fixed message width), 0 for binary spikes.
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
            "hops", "chip_crossings", "active_neurons", "payload_bits")


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
    payload_bits: np.ndarray

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
    the per-step counts the source causes, on the cores they concern only: M's columns are blocks, for a
    population source [synops | messages_in] on the cores its synapses reach and [spikes | messages_out |
    hops | chip_crossings] on the cores it sits on, for an input port [synops | input_messages]. Restricting
    the columns to those cores (a few of the network's, in a deep net) keeps the product a small fraction
    of the layer's own synaptic work; the blocks are scattered into all C cores afterwards."""

    def __init__(self, qnet: QuantNetwork, device: torch.device) -> None:
        self.core_ids = tuple(c.index for c in qnet.cores)
        column = {cid: i for i, cid in enumerate(self.core_ids)}
        n_cores = len(self.core_ids)
        xy = np.array([(c.x, c.y) for c in qnet.cores], dtype=np.int64).reshape(n_cores, 2)
        chip = np.array([c.chip for c in qnet.cores], dtype=np.int64)
        self.core_col = {p.name: np.array([column[int(c)] for c in p.core]) for p in qnet.populations}
        self.neurons = np.bincount(np.concatenate(list(self.core_col.values())), minlength=n_cores)
        self.bias_nonzero = {p.name: torch.as_tensor(p.bias != 0, device=device) for p in qnet.populations
                             if (p.bias != 0).any()}
        self.v_init_nonzero = {p.name for p in qnet.populations if (p.v_init != 0).any()}
        self.core_index = {name: torch.as_tensor(cols, device=device) for name, cols in self.core_col.items()}
        self.n_cores = n_cores
        # a bias axon (an always-on port) fires inside the chip every step: its spikes arrive as on-chip
        # messages, not as input injected from the host
        self.on_chip_ports = {i.name for i in qnet.inputs if i.always_on}
        # a graded port's every message carries its fixed-width payload
        self.payload_bits = {i.name: i.graded_bits for i in qnet.inputs if i.graded_bits}
        self.masks: dict[str, sp.csr_matrix] = {}
        self.ops: dict[str, SynapseOp] = {}
        self.blocks: dict[str, list[torch.Tensor]] = {}  # per source, the cores each column block covers
        self.core_ops: dict[str, SynapseOp] = {}
        self.own_cores: dict[str, torch.Tensor] = {}
        for name, size in [*((i.name, i.size) for i in qnet.inputs), *((p.name, p.size) for p in qnet.populations)]:
            outgoing = [pr for pr in qnet.projections if pr.src == name]
            reached = np.unique(np.concatenate([self.core_col[pr.dst] for pr in outgoing] or [np.zeros(0, int)]))
            local = np.full(n_cores, -1, np.int64)
            local[reached] = np.arange(reached.size)
            syn = np.zeros(size * reached.size, np.int64)  # (size, reached): synapses onto each reached core
            for pr in outgoing:
                w = pr.weights
                dst_core = np.repeat(local[self.core_col[pr.dst]], np.diff(w.indptr))
                syn += np.bincount(w.indices.astype(np.int64) * reached.size + dst_core, minlength=syn.size)
            syn = syn.reshape(size, reached.size)
            mask = syn > 0
            rows, cols = np.nonzero(mask)
            self.masks[name] = sp.csr_matrix((np.ones(rows.size, np.int64), (rows, reached[cols])),
                                             shape=(size, n_cores))
            columns = [syn, mask]
            cores = [reached, reached]
            if name in self.core_col:
                own = self.core_col[name]
                sits = np.unique(own)
                place = np.full(n_cores, -1, np.int64)
                place[sits] = np.arange(sits.size)
                dist = np.abs(xy[own][:, None, :] - xy[reached][None, :, :]).sum(axis=2)
                crossings = chip[own][:, None] != chip[reached][None, :]
                per_neuron = (np.ones(size, np.int64), mask.sum(axis=1), (mask * dist).sum(axis=1),
                              (mask & crossings).sum(axis=1))
                # active neurons per core: the same exact product, of the activity flags with the neuron -> core map
                self.core_ops[name] = SynapseOp(sp.csr_matrix((np.ones(size, np.int64), (place[own], np.arange(size))),
                                                              shape=(sits.size, size)), 1, device)
                self.own_cores[name] = torch.as_tensor(sits, device=device)
                one_hot = np.zeros((size, sits.size), np.int64)
                for values in per_neuron:
                    one_hot[:] = 0
                    one_hot[np.arange(size), place[own]] = values
                    columns.append(one_hot.copy())
                    cores.append(sits)
            self.blocks[name] = [torch.as_tensor(c, device=device) for c in cores]
            table = sp.csr_matrix(np.hstack(columns).T)
            if table.shape[0]:
                # spikes (R, n_src) @ table == (table^T @ spikes^T)^T: the same exact product as a projection's
                self.ops[name] = SynapseOp(table, 1, device)

    def source_counts(self, name: str, out: torch.Tensor) -> dict[str, torch.Tensor]:
        """Counts caused by one source's outputs ``out`` (T, B, n) (spikes, or graded payloads)."""
        steps, batch, n = out.shape
        active = out if out.dtype == torch.bool else out != 0
        op = self.ops.get(name)  # none for a port that feeds nothing
        counts = op.exact(active.reshape(-1, n)).view(steps, batch, -1) if op is not None else None
        if name in self.core_col:
            keys: tuple[str, ...] = ("synops", "messages_in", "spikes", "messages_out", "hops", "chip_crossings")
        else:
            keys = ("synops", "messages_in" if name in self.on_chip_ports else "input_messages")
        result, start = {}, 0
        for key, cores in zip(keys, self.blocks[name]):
            full = torch.zeros((steps, batch, self.n_cores), dtype=torch.int64, device=out.device)
            if counts is not None:
                full.index_copy_(2, cores, counts[..., start:start + cores.numel()])
            result[key] = full
            start += cores.numel()
        if name in self.payload_bits:
            result["payload_bits"] = result["input_messages"] * self.payload_bits[name]
        return result

    def traffic(self, name: str, out: torch.Tensor) -> np.ndarray:
        """(C, C) messages sent by a population's spikes ``out`` (T, B, n), summed over steps and batch."""
        per_neuron = out.sum(dim=(0, 1)).cpu().numpy().astype(np.int64)
        src = sp.csr_matrix((per_neuron, (self.core_col[name], np.arange(per_neuron.size))),
                            shape=(self.n_cores, per_neuron.size))
        return np.asarray((src @ self.masks[name]).todense())

    def input_or_bias(self, name: str, a: torch.Tensor) -> torch.Tensor:
        """(T, B, n) bool: neurons of population ``name`` with input a[t] != 0 or a nonzero bias."""
        active = a != 0
        return active.logical_or_(self.bias_nonzero[name]) if name in self.bias_nonzero else active

    def active_neurons(self, name: str, active: torch.Tensor, u: torch.Tensor, v: torch.Tensor,
                       v_init: torch.Tensor) -> torch.Tensor:
        """(T, B, C) neurons of population ``name`` whose update at step t reads nonzero data, given
        ``input_or_bias`` and the states u, v after every step (u | v is nonzero iff one of them is)."""
        steps, batch, n = active.shape
        if name in self.v_init_nonzero:
            active[0] |= v_init != 0
        if steps > 1:
            active[1:] |= torch.bitwise_or(u[:-1], v[:-1]) != 0
        per_core = self.core_ops[name].exact(active.reshape(-1, n)).view(steps, batch, -1)
        counts = torch.zeros((steps, batch, self.n_cores), dtype=torch.int64, device=active.device)
        return counts.index_copy_(2, self.own_cores[name], per_core)
