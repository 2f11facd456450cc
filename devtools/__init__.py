"""Development tools: the harness that runs a TF Serving stand-in for tests and benchmarks."""
