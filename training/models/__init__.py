"""Model builders: one module per model."""
