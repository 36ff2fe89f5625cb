"""Neuron models, one module per model family: each holds its pure float step (the spec of
docs/architecture.md, "One time step", written once for every float engine)."""
