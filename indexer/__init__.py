"""Catalog indexing: the Index interface, its backends (embedded, Elasticsearch) and the catalog reader."""
