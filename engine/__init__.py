"""fusetile engine: network description, reference executor, and (later) fused tiled execution."""
