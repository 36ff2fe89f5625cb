"""Tiny data files in the on-disk formats of the data sets neuromap reads (tonic's folders, event files),
written by the tests from events they know, to be read back."""
import numpy as np

EVENT_DTYPE = np.dtype([("x", np.int64), ("y", np.int64), ("t", np.int64), ("p", np.int64)])


def events(rng, n, sensor, t0, span, dtype=EVENT_DTYPE):
    w, h, p = sensor
    ev = np.zeros(n, dtype=dtype)
    ev["x"], ev["p"] = rng.integers(0, w, n), rng.integers(0, p, n)
    if "y" in dtype.names:
        ev["y"] = rng.integers(0, h, n)
    ev["t"] = np.sort(rng.integers(t0, t0 + span, n))
    ev["t"][0], ev["t"][-1] = t0, t0 + span - 1  # the sample spans exactly `span` microseconds
    return ev


def write_nmnist_bin(path, ev):
    """N-MNIST's 40-bit events (Orchard's format): x, y bytes, then polarity (bit 23) and a 23-bit time."""
    raw = np.zeros((len(ev), 5), dtype=np.uint8)
    t = ev["t"].astype(np.int64)
    raw[:, 0], raw[:, 1] = ev["x"], ev["y"]
    raw[:, 2] = (ev["p"] << 7) | ((t >> 16) & 0x7F)
    raw[:, 3], raw[:, 4] = (t >> 8) & 0xFF, t & 0xFF
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw.tobytes())


def write_dvsgesture_npy(path, ev):
    """The preprocessed DVS Gesture of tonic: (M, 4) columns x, y, p, t in milliseconds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.stack([ev["x"], ev["y"], ev["p"], ev["t"] // 1000], axis=1))


def write_shd_h5(path, samples, labels):
    """SHD's HDF5 layout: spikes/times (s) and spikes/units as variable-length rows, labels, extra/keys, speaker."""
    import h5py

    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        times = f.create_dataset("spikes/times", (len(samples),), dtype=h5py.vlen_dtype(np.float32))
        units = f.create_dataset("spikes/units", (len(samples),), dtype=h5py.vlen_dtype(np.uint16))
        for i, ev in enumerate(samples):
            times[i], units[i] = ev["t"] / 1e6, ev["x"]
        f["labels"] = np.asarray(labels, dtype=np.uint16)
        f["extra/keys"] = np.array([b"zero", b"one", b"two"])
        f["extra/speaker"] = np.zeros(len(samples), dtype=np.uint16)


SHD_EVENTS = np.dtype([("t", np.int64), ("x", np.int64), ("p", np.int64)])


def tonic_sample(kind, rng):
    if kind == "nmnist":
        return events(rng, 20, (34, 34, 2), 0, 300_000)
    if kind == "dvsgesture":
        ev = events(rng, 20, (128, 128, 2), 0, 6_000_000)
        ev["t"] -= ev["t"] % 1000  # stored in milliseconds
        return ev
    ev = events(rng, 20, (700, 1, 1), 0, 1_000_000, SHD_EVENTS)
    ev["p"] = 1  # tonic gives SHD's spikes polarity 1 (tonic/datasets/hsd.py:22-27)
    return ev


def tonic_folder(kind, root, rng, per_split=3):
    """A tiny copy of a tonic data set folder; the events and labels of its test split, in tonic's order."""
    for split in ("Train", "Test"):
        events, labels = [tonic_sample(kind, rng) for _ in range(per_split)], [i % 3 for i in range(per_split)]
        for i, (ev, label) in enumerate(zip(events, labels)):
            if kind == "nmnist":
                write_nmnist_bin(root / "NMNIST" / split / str(label) / f"{i:05d}.bin", ev)
            elif kind == "dvsgesture":
                folder = "ibmGestureTrain" if split == "Train" else "ibmGestureTest"
                write_dvsgesture_npy(root / "DVSGesture" / folder / f"user{i + 1:02d}_led" / f"{label}.npy", ev)
        if kind == "shd":
            write_shd_h5(root / "SHD" / f"shd_{split.lower()}.h5", events, labels)
    return events, labels
