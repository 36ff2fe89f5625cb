"""Frontends: where networks come from (rmp: ANN conversion, stop: SNN training)."""
