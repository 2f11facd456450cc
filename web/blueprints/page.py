"""``GET /``: the search page (static HTML/CSS/JS; it talks to the JSON API)."""

from __future__ import annotations

from flask import Blueprint, render_template, url_for

from web.services import services

bp = Blueprint("page", __name__)


@bp.get("/")
def index() -> str:
    settings = services().settings
    return render_template(
        "index.html",
        max_upload_bytes=settings.max_upload_bytes,
        default_k=settings.default_k,
        users_url=url_for("users.forget", user_id="_")[:-1],  # "/api/v1/users/": the page appends the id
    )
