"""neuromap: trained SNNs to Loihi-style neuromorphic hardware."""
