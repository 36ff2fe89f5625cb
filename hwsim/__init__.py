"""hwsim: how a Loihi-style target behaves (fixed-point cores, cycles, energy). Never imports neuromap."""
