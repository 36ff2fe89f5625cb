"""Compiler passes: pure functions from graph to graph (or to a Mapping)."""
