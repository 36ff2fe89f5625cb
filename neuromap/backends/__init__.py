"""Execution backends: the torch float reference (torch_sim) and Lava (lava/)."""
