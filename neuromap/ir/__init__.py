"""The network-graph IR: node types, the validated Graph, save/load, NIR interop."""
from neuromap.ir.graph import Graph, make_node, sequential
from neuromap.ir.nir_io import from_nir, read_nir, to_nir, write_nir
from neuromap.ir.nodes import (
    IF,
    LI,
    LIF,
    NODE_TYPES,
    Affine,
    AvgPool2d,
    Conv2d,
    Flatten,
    Input,
    Linear,
    Node,
    Output,
    SumPool2d,
)
from neuromap.ir.serialize import load_graph, save_graph

__all__ = ["Graph", "make_node", "sequential", "Node", "Input", "Output", "Affine", "Linear", "Conv2d",
           "SumPool2d", "AvgPool2d", "Flatten", "LIF", "IF", "LI", "NODE_TYPES", "load_graph", "save_graph",
           "read_nir", "write_nir", "from_nir", "to_nir"]
