"""The web tier: Flask app factory for the JSON API and the search page.

A front-end adapter: the use cases live in ``services`` (shared with the
gRPC API); blueprints translate HTTP to and from them.

``create_app`` builds what it is not given (model client, analyzer, index)
from one ``Settings`` object, so tests inject fakes or real parts and the CLI
passes nothing. Nothing is created at import time.
"""

from __future__ import annotations

import atexit

from flask import Flask

from eyepic.exports import ModelClient
from eyepic.settings import Settings
from indexer.base import Index
from outfits.model import CompatibilityModel
from services.access import AccessControl
from services.outfits import Reranker
from services.search import AnalyzerLike
from taste.events import EventStore
from web.services import Services

# multipart framing and the small form fields ride on top of the image itself
FORM_OVERHEAD_BYTES = 64 * 1024


def create_app(
    settings: Settings | None = None,
    *,
    analyzer: AnalyzerLike | None = None,
    index: Index | None = None,
    models: ModelClient | None = None,
    events: EventStore | None = None,
    access: AccessControl | None = None,
    compatibility: CompatibilityModel | None = None,
    reranker: Reranker | None = None,
) -> Flask:
    """Build the app; ``analyzer``/``index``/``models``/``events``/``access``/``compatibility`` override what
    settings would build (the compatibility model loads on first use). ``reranker``: complete-the-look's
    taste seam.

    The caller owns (and closes) what it passes; an events store built here
    is closed when the process exits (a gunicorn worker included).
    """
    settings = settings or Settings.from_env()
    if analyzer is None:
        from serving.analyzer import Analyzer

        analyzer = Analyzer.from_settings(settings, models)
    if index is None:
        from indexer.factory import open_index

        index = open_index(settings)
    if events is None:
        from taste.event_stores import open_event_store

        events = open_event_store(settings)  # SQLite under var_dir, or the Elasticsearch events index
        atexit.register(events.close)
    if access is None:
        access = AccessControl.from_settings(settings)

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_upload_bytes + FORM_OVERHEAD_BYTES
    app.json.ensure_ascii = False  # type: ignore[attr-defined]  # Korean names stay readable
    app.json.sort_keys = False  # type: ignore[attr-defined]  # keep documented field order
    app.extensions["eyepic"] = Services(settings=settings, analyzer=analyzer, index=index, events=events,
                                          access=access, compatibility=compatibility, reranker=reranker)

    from web import errors
    from web.blueprints import health, items, meta, outfits, page, search, users
    from web.metrics import install_metrics
    from web.security import install_security

    errors.init_app(app)
    for blueprint in (search.bp, items.bp, outfits.bp, meta.bp, health.bp, page.bp, users.bp, users.session_bp):
        app.register_blueprint(blueprint)
    install_metrics(app)  # /metrics; times model and index calls
    install_security(app, settings.cors_origin_list)  # CSP, nosniff, frame denial, CORS
    return app
