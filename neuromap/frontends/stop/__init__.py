"""STOP: online training of deep SNNs' weights, thresholds and leaks (docs/reference/algorithms.md §1), and its export.

    model = build_model("c16-p2-c32-p2", (1, 28, 28), 10)
    trainer = Trainer(model, "stop-wtl")
    fit(trainer, x_train, y_train, x_test, y_test, steps=8, epochs=2)
    graph = to_graph(model, steps=8)        # neuromap IR: LIF (soft reset, learned theta/leak) + LI read-out

Deep networks: max pools (``m2``), residual blocks (``r64``, ``r128s2``), biases, the ``vgg11`` and
``resnet18`` presets scaled by ``width``, a data-dependent start, a GPU, checkpoints:

    model = build_model("resnet18", (3, 32, 32), 10, width=0.25).to("cuda")
    model.calibrate_(x_train[:256].cuda(), steps=6)
    fit(Trainer(model, "stop-wtl", amp=True), x_train, y_train, x_test, y_test, steps=6, epochs=300,
        checkpoint="ckpt", resume=False, schedule="cosine")
"""
from neuromap.frontends.stop.events import saccade_events
from neuromap.frontends.stop.export import to_graph
from neuromap.frontends.stop.model import PRESETS, SNN, build_model, parse_arch
from neuromap.frontends.stop.neurons import LIFParams, spike
from neuromap.frontends.stop.trainer import (
    METHODS,
    FitResult,
    Trainer,
    evaluate,
    fit,
    load_checkpoint,
    save_checkpoint,
    step_loss,
)

__all__ = ["build_model", "parse_arch", "PRESETS", "SNN", "LIFParams", "spike", "Trainer", "METHODS", "fit",
           "evaluate", "FitResult", "step_loss", "to_graph", "saccade_events", "save_checkpoint", "load_checkpoint"]
