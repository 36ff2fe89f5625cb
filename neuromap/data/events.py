"""Event streams (x, y, t, p) binned to time steps: one frame of event counts per step.

Events are tonic's structured arrays (fields ``x``, ``y``, ``t``, ``p``; ``y`` absent for a 1-D sensor such
as SHD's cochlea) with ``t`` in microseconds, and a sensor size ``(W, H, P)`` in tonic's order (width,
height, polarities; tonic/datasets/nmnist.py: ``sensor_size = (34, 34, 2)``).

Binning, per sample (every sample gets T = ``steps`` frames, whatever its duration):

* the sample spans ``S = t_last - t_first + 1`` microseconds from its first event; step k (k = 1..T) is the
  time window ``[t_first + (k-1)·S/T, t_first + k·S/T)``, so an event at t falls in step
  ``floor((t - t_first)·T / S) + 1`` (integer arithmetic: exact, every event lands in one step);
* frame k holds, per polarity channel, row and column, the number of events in that window: shape
  ``(P, H, W)``, or ``(P, W)`` for a sensor without ``y``, as tonic's ``ToFrame`` lays frames out
  (tonic/functional/to_frame.py:89 and :97). Polarity p is channel p (p in 0..P-1; booleans are 0/1);
  a sensor of one polarity puts every event in channel 0, whatever its p (SHD's are 1), as tonic does.

This is tonic's ``ToFrame(n_time_bins=T)`` (the same number of bins for every recording,
tonic/slicers.py:123-157) except that tonic floors the window to whole microseconds
(slicers.py:150) and so drops the events after its last window; here the T windows cover the whole sample.
A step therefore lasts S/T µs, which differs between samples of different lengths.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from neuromap.data.npz import check_dtype, check_fits
from neuromap.errors import FormatError

FRAME_DTYPE = np.float32


def frame_shape(events_dtype: np.dtype, sensor_size: tuple[int, int, int]) -> tuple[int, ...]:
    """(P, H, W), or (P, W) for events without a ``y`` field."""
    width, height, polarities = sensor_size
    if events_dtype.names is not None and "y" in events_dtype.names:
        return (polarities, height, width)
    return (polarities, width)


def check_events(events: np.ndarray, sensor_size: tuple[int, int, int], source: str | Path, sample: int) -> None:
    """Fields x, t, p (and y) present, real numbers, and every event inside the sensor and after t = 0."""
    names = events.dtype.names or ()
    for field in ("x", "t", "p"):
        if field not in names:
            raise FormatError(f"{source}: the events of sample {sample} have no field {field!r} (events are records "
                              "with fields x, y, t, p; y only for a 2-D sensor)", path=str(source), field=field)
    check_dtype(events.dtype, Path(str(source)), "events", structured=True)
    width, height, polarities = sensor_size
    if polarities == 1 and np.unique(events["p"]).size > 1:
        raise FormatError(f"{source}: sample {sample} has events of several polarities, but the sensor has one "
                          f"(sensor size W, H, P = {tuple(sensor_size)})", path=str(source), field="p")
    # one polarity: every event is channel 0 whatever its p, as tonic's ToFrame does (to_frame.py:63-68)
    bounds = {"x": width, **({"p": polarities} if polarities > 1 else {}), **({"y": height} if "y" in names else {})}
    for field, bound in bounds.items():
        values = events[field].astype(np.float64)
        if values.size and (values.min() < 0 or values.max() >= bound or not np.all(values == np.floor(values))):
            raise FormatError(f"{source}: sample {sample} has an event with {field} = "
                              f"{values[(values < 0) | (values >= bound) | (values != np.floor(values))][0]}, outside "
                              f"the sensor's 0..{bound - 1} (sensor size W, H, P = {tuple(sensor_size)})",
                              path=str(source), field=field, allowed=(0, bound - 1))
    t = events["t"]
    if t.size and (not np.isfinite(t).all() or t.min() < 0):
        raise FormatError(f"{source}: sample {sample} has an event time that is negative or not finite (times are "
                          "microseconds from the recording's start)", path=str(source), field="t")


def bin_events(events: np.ndarray, sensor_size: tuple[int, int, int], steps: int) -> np.ndarray:
    """(steps, *frame_shape) event counts, binned as the module docstring says (events checked already)."""
    shape = frame_shape(events.dtype, sensor_size)
    pixels = math.prod(shape)
    if events.size == 0:
        return np.zeros((steps, *shape), dtype=FRAME_DTYPE)
    t = np.floor(events["t"]).astype(np.int64)
    first = int(t.min())
    span = int(t.max()) - first + 1
    step = (t - first) * steps // span
    width, height, polarities = sensor_size
    x = events["x"].astype(np.int64)
    p = events["p"].astype(np.int64) if polarities > 1 else np.zeros_like(x)
    names = events.dtype.names or ()
    pixel = (p * height + events["y"].astype(np.int64)) * width + x if "y" in names else p * width + x
    counts = np.bincount(step * pixels + pixel, minlength=steps * pixels)
    return counts.astype(FRAME_DTYPE).reshape(steps, *shape)


def bin_samples(samples: Sequence[np.ndarray], sensor_size: tuple[int, int, int], steps: int,
                source: str | Path, files: Sequence[str] | None = None) -> np.ndarray:
    """(N, steps, *frame) frames of N event samples, the memory checked before it is allocated; an error
    names the sample's file where ``files`` gives one per sample, else ``source`` and the sample's index."""
    if not samples:
        raise FormatError(f"{source}: no samples", path=str(source))
    shape = frame_shape(samples[0].dtype, sensor_size)
    check_fits(len(samples) * steps * math.prod(shape) * np.dtype(FRAME_DTYPE).itemsize,
               f"{len(samples)} samples x {steps} steps of {shape} event frames", Path(str(source)), "events")
    out = np.empty((len(samples), steps, *shape), dtype=FRAME_DTYPE)
    for i, events in enumerate(samples):
        check_events(events, sensor_size, files[i] if files else source, i)
        out[i] = bin_events(events, sensor_size, steps)
    return out
