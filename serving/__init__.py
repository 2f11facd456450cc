"""Serving: model clients (in-process, TF Serving gRPC) and the Analyzer."""
