"""Catalog indexing: the Index interface, its backends, and the indexer job."""
