"""How many samples hwsim simulates at once: its working set per sample against the device's free memory.

A batch chunk holds, at its peak (``hwsim.sim._run_chunk``, population by population over all T steps):
the spikes of every source still to be read (1 byte per neuron and step, at most all of them), and for the
population being updated its input and state (a6/u and v: 8 bytes each in the wide case), its spikes
(1), the synaptic product before it is added (8: int64 or a float) and one element-wise temporary (8),
plus the event counts (8 per-step counts of 8 bytes per core and step, twice while they are summed).
``samples_per_chunk`` divides ``MEMORY_FRACTION`` of the free memory by that: the recorded result arrays
(``record``) are the caller's and come on top (``TRACE_BYTES`` per neuron and step).
"""
from __future__ import annotations

import os

import torch

from hwsim.netdesc import QuantNetwork

MEMORY_FRACTION = 0.5  # of the free memory: leaves room for the allocator's slack and for other processes
BYTES_PER_SPIKE = 1
BYTES_PER_UPDATED_NEURON = 8 + 8 + 1 + 8 + 8
BYTES_PER_CORE_COUNT = 8 * 8 * 2
TRACE_BYTES = {"spikes": 1, "v": 4, "u": 4}


def free_bytes(device: torch.device) -> int:
    """Free memory of the device: CUDA's own count, or the kernel's MemAvailable (the page cache it can
    reclaim included) on the CPU, where psutil is not a dependency."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:  # no /proc (not Linux): the physical memory, as the C library reports it
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def bytes_per_sample(qnet: QuantNetwork, steps: int) -> int:
    """The working set of one sample over ``steps`` steps (the module docstring's terms)."""
    total = sum(p.size for p in qnet.populations) + sum(i.size for i in qnet.inputs)
    largest = max((p.size for p in qnet.populations), default=0)
    return steps * (BYTES_PER_SPIKE * total + BYTES_PER_UPDATED_NEURON * largest
                    + BYTES_PER_CORE_COUNT * len(qnet.cores))


def samples_per_chunk(qnet: QuantNetwork, steps: int, device: torch.device, free: int | None = None) -> int:
    """Samples whose working set fits ``MEMORY_FRACTION`` of ``free`` bytes (default: the device's), at least 1."""
    available = free_bytes(device) if free is None else free
    return max(1, int(available * MEMORY_FRACTION) // max(bytes_per_sample(qnet, steps), 1))
