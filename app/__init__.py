"""The application layer: what a user runs.

The ``eyepic`` CLI (``app.cli``), the launchers (``app.launch``: Flask,
gunicorn, the gRPC API), the publish pipeline (``app.publish``: train ->
calibrate -> evaluate -> publish) and the indexing job (``app.indexing``).
The one layer that may import every other one; nothing imports it.
"""
