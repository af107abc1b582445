"""Pure builders: spec in, desired manifests out. No I/O; unit-tested with plain dicts."""
