"""Probes: ``/healthz`` (the process answers) and ``/readyz`` (it can serve searches)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from eyepic.exports import ModelUnavailable
from indexer.base import IndexUnavailable
from web.errors import RETRY_AFTER_S, Problem
from web.services import services

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness: always 200 while the process serves requests; restarts won't fix the rest."""
    return {"status": "ok"}


@bp.get("/readyz")
def readyz() -> dict[str, Any]:
    """Readiness: 200 only when the model is loaded and the index answers, else 503.

    The first call loads the model, so a readiness probe also warms it up.
    """
    svc = services()
    checks: dict[str, str] = {}
    try:
        checks["model"] = "ok" if svc.analyzer.ready() else "not loaded"
    except ModelUnavailable as exc:
        checks["model"] = str(exc)
    try:
        items = svc.index.count()
        checks["index"] = "ok"
    except (IndexUnavailable, OSError) as exc:
        items = 0
        checks["index"] = str(exc)
    failing = {name: why for name, why in checks.items() if why != "ok"}
    if failing:
        raise Problem(
            503,
            "not-ready",
            "Not ready",
            "; ".join(f"{name}: {why}" for name, why in failing.items()),
            headers={"Retry-After": str(RETRY_AFTER_S)},
            checks=checks,
        )
    return {"status": "ready", "checks": checks, "model_version": svc.analyzer.model_version, "items": items}
