"""The web tier: Flask app factory for the JSON API and the search page.

``create_app`` builds what it is not given (model client, analyzer, index)
from one ``Settings`` object, so tests inject fakes or real parts and the CLI
passes nothing. Nothing is created at import time.
"""

from __future__ import annotations

from flask import Flask

from eyepic.settings import Settings
from web.services import AnalyzerLike, Services

# multipart framing and the small form fields ride on top of the image itself
FORM_OVERHEAD_BYTES = 64 * 1024


def create_app(
    settings: Settings | None = None,
    *,
    analyzer: AnalyzerLike | None = None,
    index: object | None = None,
    models: object | None = None,
) -> Flask:
    """Build the app; ``analyzer``/``index``/``models`` override what settings would build."""
    settings = settings or Settings.from_env()
    if analyzer is None:
        from serving.analyzer import Analyzer

        analyzer = Analyzer.from_settings(settings, models)  # type: ignore[arg-type]
    if index is None:
        from indexer.factory import open_index

        index = open_index(settings)

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_upload_bytes + FORM_OVERHEAD_BYTES
    app.json.ensure_ascii = False  # type: ignore[attr-defined]  # Korean names stay readable
    app.json.sort_keys = False  # type: ignore[attr-defined]  # keep documented field order
    app.extensions["eyepic"] = Services(settings=settings, analyzer=analyzer, index=index)  # type: ignore[arg-type]

    from serving.metrics import install_metrics
    from web import errors
    from web.blueprints import health, items, meta, page, search

    errors.init_app(app)
    for blueprint in (search.bp, items.bp, meta.bp, health.bp, page.bp):
        app.register_blueprint(blueprint)
    install_metrics(app)  # /metrics; times model and index calls
    return app
