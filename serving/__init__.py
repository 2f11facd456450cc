"""Serving: model clients (in-process, TF Serving gRPC), the Analyzer, and the TF Serving stand-in."""
