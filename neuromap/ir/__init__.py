"""The network-graph IR: node types, the validated Graph, save/load, NIR interop."""
from neuromap.ir.graph import Graph, make_node, sequential
from neuromap.ir.nir_io import from_nir, read_nir, to_nir, write_nir
from neuromap.ir.nodes import (
    STATELESS_TYPES,
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
from neuromap.neurons.lif import IF, LI, LIF  # the built-in neuron models' nodes (neuromap.neurons)

# the built-in node types by kind (a graph file may also name any registered neuron model: neuromap.neurons)
NODE_TYPES = {**STATELESS_TYPES, **{cls.kind: cls for cls in (LIF, IF, LI)}}

__all__ = ["Graph", "make_node", "sequential", "Node", "Input", "Output", "Affine", "Linear", "Conv2d",
           "SumPool2d", "AvgPool2d", "Flatten", "LIF", "IF", "LI", "NODE_TYPES", "load_graph", "save_graph",
           "read_nir", "write_nir", "from_nir", "to_nir"]
