"""RMP-SNN: convert a trained ReLU ANN into integrate-and-fire neurons with soft reset
(docs/reference/algorithms.md §2).

    model = rmp.build_model("mlp", (64,), 10)           # or vgg16 / resnet20 / resnet34, or any torch model
    rmp.train_ann(model, neuromap.data.load("digits").flat(), epochs=20)
    graph = neuromap.convert(model, calib_x, threshold="ann_max", reset="subtract")
    curve = rmp.accuracy_vs_steps(graph, x_test, y_test, steps=[16, 32, 64])
"""
from neuromap.frontends.rmp.ann import Layer, LayerGraph
from neuromap.frontends.rmp.build import build_graph
from neuromap.frontends.rmp.conversion import convert, latency
from neuromap.frontends.rmp.models import QCFS, ZOO, build_model, he_init, lenet, mlp, resnet20, resnet34, vgg, vgg16
from neuromap.frontends.rmp.sweep import accuracy_vs_steps, reset_sweep, steps_to_within
from neuromap.frontends.rmp.thresholds import GRANULARITIES, METHODS
from neuromap.frontends.rmp.trace import fold_batchnorm, trace
from neuromap.frontends.rmp.train import ann_accuracy, train_ann

__all__ = ["convert", "latency", "trace", "fold_batchnorm", "build_graph", "Layer", "LayerGraph", "METHODS",
           "GRANULARITIES", "QCFS", "ZOO", "build_model", "mlp", "lenet", "vgg", "vgg16", "resnet20", "resnet34",
           "he_init", "train_ann",
           "ann_accuracy", "accuracy_vs_steps", "reset_sweep", "steps_to_within"]
