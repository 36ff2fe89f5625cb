"""``neuromap.reporting.report``: one self-contained HTML page that answers the four questions about a network
(does it fit, does it still work quantized, how fast and cheap on the chip, against a GPU), with its figures."""
from __future__ import annotations

import time
from collections.abc import Mapping as MappingType, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neuromap import atomic
from neuromap.progress import bar

if TYPE_CHECKING:  # imported when a report is built: importing neuromap.reporting stays cheap
    from neuromap.ir import Graph
    from neuromap.mapping import Mapping


@dataclass(frozen=True)
class Report:
    """What ``report`` wrote: the ``page``, the ``figures`` inlined in it (name -> title), their PNG files when
    ``figures_dir`` was given, the ``numbers`` the page shows (nested by section; ``numbers["estimate"]`` holds
    the estimator's figures under their ``neuromap estimate --json`` names) and the ``seconds`` it took."""

    page: Path
    figures: dict[str, str]
    numbers: dict[str, Any]
    seconds: float
    figure_files: dict[str, Path] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The ``neuromap report --json`` object."""
        return {"page": str(self.page), "figures": dict(self.figures),
                "figure_files": {k: str(v) for k, v in self.figure_files.items()}, "numbers": self.numbers,
                "seconds": self.seconds}


TITLES = {
    "resources": "utilisation of every resource on every core",
    "chip_map": "cores on the mesh and the traffic between them",
    "quantization": "weight rounding error, clipped and zeroed weights per projection",
    "activity": "spike raster of one sample and firing rate per population",
    "energy": "energy and latency per inference by term, totals with bands",
    "gpu": "chip vs GPU over the batch sweep",
    "sweep": "accuracy against time steps",
}


def report(model: str | Path | Graph | Mapping, out: str | Path = "report.html", *, data: str = "digits",
           steps: int | None = None, limit: int | None = None, target: str | None = None, lava: bool = False,
           sweep: Sequence[int] = (), sweep_json: str | Path | None = None, split: str | None = None,
           seed: int = 0, gpu: str = "h100", nir_import: MappingType[str, Any] | None = None,
           figures_dir: str | Path | None = None) -> Report:
    """Write one self-contained HTML page about ``model`` to ``out`` (atomically) and return what it shows.

    ``model``: a Mapping, a graph, or a file ``neuromap.mapping.read_model`` reads (compiled for ``target``,
    default loihi2, unless it is a Mapping). It runs ``limit`` samples of ``data`` (as ``neuromap run``:
    digits, mnist5k, a .npz, nmnist:DIR, ...) for ``steps`` steps (default 32) on the float reference, on
    hwsim and, with ``lava``, on Lava; estimates energy and latency as ``neuromap estimate`` does (GPU
    profile ``gpu``); with ``sweep`` (time steps) or ``sweep_json`` (a ``neuromap convert --sweep --json``
    output) adds accuracy against T. ``nir_import``: ``read_model``'s NIR keywords (framework, reset, ...).
    ``figures_dir``: also write each figure there as a PNG.

    Example::

        >>> import neuromap
        >>> result = neuromap.reporting.report("out/mlp.npz", "out/report.html", limit=50, steps=16)
        >>> result.numbers["accuracy"]["hwsim"], result.page
    """
    from neuromap.reporting import figures as figs
    from neuromap.reporting.collect import gather
    from neuromap.reporting.page import render
    from neuromap.reporting.plots import accuracy_vs_steps_figure

    start = time.perf_counter()
    with bar(total=2, desc="report: runs and estimate, figures", unit="stage") as progress:
        contents = gather(model, data=data, steps=steps, limit=limit, target=target, lava=lava, sweep=sweep,
                          sweep_json=sweep_json, split=split, seed=seed, gpu=gpu, nir_import=nir_import)
        progress.update()
        mapping = contents.mapping
        assert contents.hwsim.events is not None, "the hwsim run records events"
        drawn = {"resources": figs.resources_figure(mapping),
                 "chip_map": figs.chip_map_figure(mapping, contents.hwsim.events.traffic, len(contents.samples.y)),
                 "quantization": figs.quantization_figure(mapping.quantization_report),
                 "activity": figs.activity_figure(contents.hwsim, contents.torch),
                 "energy": figs.energy_figure(contents.estimate),
                 "gpu": figs.gpu_figure(contents.estimate)}
        if contents.sweep:
            drawn["sweep"] = accuracy_vs_steps_figure(contents.sweep, reference=contents.sweep_reference,
                                                      size=figs.SIZE)
        pngs = {name: figs.png(fig) for name, fig in drawn.items()}
        progress.update()
    page, shown = render(contents, pngs)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out, page)
    files = {}
    if figures_dir is not None:
        folder = Path(figures_dir)
        folder.mkdir(parents=True, exist_ok=True)
        files = {name: atomic.write_bytes(folder / f"{name}.png", data) for name, data in pngs.items()}
    return Report(out, {name: TITLES[name] for name in pngs}, shown, round(time.perf_counter() - start, 2), files)
