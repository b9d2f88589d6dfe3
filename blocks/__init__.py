"""Pure decision logic: the canonical content model, targeting and variant selection."""
