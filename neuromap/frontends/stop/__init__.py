"""STOP: online training of deep SNNs' weights, thresholds and leaks (docs/reference/algorithms.md §1), and its export.

    model = build_model("c16-p2-c32-p2", (1, 28, 28), 10)
    trainer = Trainer(model, "stop-wtl")
    fit(trainer, x_train, y_train, x_test, y_test, steps=8, epochs=2)
    graph = to_graph(model, steps=8)        # neuromap IR: LIF (soft reset, learned theta/leak) + LI read-out
"""
from neuromap.frontends.stop.events import saccade_events
from neuromap.frontends.stop.export import to_graph
from neuromap.frontends.stop.model import PRESETS, SNN, build_model, parse_arch
from neuromap.frontends.stop.neurons import LIFParams, spike
from neuromap.frontends.stop.trainer import METHODS, FitResult, Trainer, evaluate, fit, step_loss

__all__ = ["build_model", "parse_arch", "PRESETS", "SNN", "LIFParams", "spike", "Trainer", "METHODS", "fit",
           "evaluate", "FitResult", "step_loss", "to_graph", "saccade_events"]
