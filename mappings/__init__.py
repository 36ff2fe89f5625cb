"""mappings: what a hardware target is (declarative descriptions with sources)."""
