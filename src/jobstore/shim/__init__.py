"""The drop-in mapping: the store, its dict tier, tracking of handed-out objects, the loop."""
