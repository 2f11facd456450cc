"""Browser-facing protections: security headers, CORS from settings, limits from settings.

The page must run under a Content-Security-Policy without inline script, so
its template may hold no inline ``<script>`` or ``on*=`` handler (the page
test in test_page.py runs it in Chromium under that policy).
"""

from __future__ import annotations

import io
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from PIL import Image

from eyepic.settings import Settings
from indexer.embedded import EmbeddedIndex
from web import create_app

from fakes import FakeModels

WEB = Path(__file__).resolve().parents[1] / "web"


def client_for(tmp_path: Path, **settings: object) -> FlaskClient:
    s = Settings(var_dir=tmp_path / "var", model_dir=tmp_path / "models", **settings)  # type: ignore[arg-type]
    # the analyzer built from settings, as in production (its pixel limit comes from them)
    return create_app(s, models=FakeModels(), index=EmbeddedIndex(s.index_dir / "t.sqlite")).test_client()


@pytest.mark.parametrize("path", ["/", "/api/v1/taxonomy", "/api/v1/items/nope", "/healthz", "/static/app.js"])
def test_every_answer_carries_the_security_headers(tmp_path: Path, path: str) -> None:
    resp = client_for(tmp_path).get(path)
    csp = dict(part.strip().split(" ", 1) for part in resp.headers["Content-Security-Policy"].split(";"))
    assert "'unsafe-inline'" not in csp["script-src"] and "'unsafe-eval'" not in csp["script-src"]
    assert csp["frame-ancestors"] == "'none'" and csp["object-src"] == "'none'"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["X-Frame-Options"] == "DENY"


class _InlineScripts(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        if tag == "script" and not names.get("src"):
            self.found.append("<script> without src")
        self.found += [f"{tag} {name}=" for name in names if name.startswith("on")]
        if any(v and v.strip().lower().startswith("javascript:") for v in names.values()):
            self.found.append(f"{tag} javascript: URL")


def test_the_page_has_no_inline_script(tmp_path: Path) -> None:
    parser = _InlineScripts()
    parser.feed(client_for(tmp_path).get("/").get_data(as_text=True))
    assert parser.found == []
    script = (WEB / "static" / "app.js").read_text()
    assert not re.search(r"\beval\s*\(|new Function\s*\(|\.innerHTML\s*=", script)


def test_no_cross_origin_calls_by_default(tmp_path: Path) -> None:
    resp = client_for(tmp_path).get("/api/v1/taxonomy", headers={"Origin": "https://evil.example"})
    assert resp.status_code == 200 and "Access-Control-Allow-Origin" not in resp.headers


def test_cors_allows_only_the_configured_origins(tmp_path: Path) -> None:
    client = client_for(tmp_path, cors_origins="https://shop.example, https://app.example/")
    allowed = client.get("/api/v1/taxonomy", headers={"Origin": "https://app.example"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "Origin" in allowed.headers["Vary"]
    preflight = client.options("/api/v1/search", headers={
        "Origin": "https://shop.example", "Access-Control-Request-Method": "POST"})
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    other = client.get("/api/v1/taxonomy", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
    assert "Access-Control-Allow-Origin" not in client.get("/", headers={"Origin": "https://shop.example"}).headers


def test_cors_origins_come_from_the_environment() -> None:
    settings = Settings.from_env({"EYEPIC_CORS_ORIGINS": "https://a.example,https://b.example"})
    assert settings.cors_origin_list == ("https://a.example", "https://b.example")
    assert Settings.from_env({}).cors_origin_list == ()


def _png(side: int) -> bytes:
    out = io.BytesIO()
    Image.effect_noise((side, side), 64).convert("RGB").save(out, format="PNG")
    return out.getvalue()


def test_upload_and_pixel_limits_come_from_settings(tmp_path: Path) -> None:
    photo = _png(40)  # 1,600 pixels, a few KB of noise
    assert len(photo) > 2000
    small = client_for(tmp_path, max_upload_bytes=2000)
    resp = small.post("/api/v1/search", data={"image": (io.BytesIO(photo), "p.png")},
                      content_type="multipart/form-data")
    assert resp.status_code == 413 and resp.get_json()["max_upload_bytes"] == 2000
    few_pixels = client_for(tmp_path, max_image_pixels=1000)
    resp = few_pixels.post("/api/v1/search", data={"image": (io.BytesIO(photo), "p.png")},
                           content_type="multipart/form-data")
    assert resp.status_code == 422 and "1000 pixels" in resp.get_json()["detail"]
    assert client_for(tmp_path).post("/api/v1/search", data={"image": (io.BytesIO(photo), "p.png")},
                                     content_type="multipart/form-data").status_code == 200
    from_env = Settings.from_env({"EYEPIC_MAX_UPLOAD_BYTES": "123", "EYEPIC_MAX_IMAGE_PIXELS": "456"})
    assert (from_env.max_upload_bytes, from_env.max_image_pixels) == (123, 456)


def test_no_client_filename_reaches_the_code() -> None:
    """Uploads are read from memory: nothing in the fronts touches an upload's filename."""
    sources = [p for p in [*WEB.rglob("*.py"), *(WEB.parent / "services").rglob("*.py")]]
    assert sources and not [p for p in sources if ".filename" in p.read_text()]
