"""Response headers that keep browsers safe with the page and the API, and the CORS policy.

Every response gets a Content-Security-Policy without inline script (the
page's script is ``static/app.js``; it sets styles through the CSSOM, which
CSP allows), ``X-Content-Type-Options: nosniff`` and frame denial (both
``frame-ancestors 'none'`` and the older ``X-Frame-Options: DENY``).
Cross-origin browser calls to ``/api/`` are allowed only from the origins in
``EYEPIC_CORS_ORIGINS`` (none by default): other origins get no
``Access-Control-Allow-Origin`` and the browser withholds the answer.
"""

from __future__ import annotations

from flask import Flask, Response, request

# blob: shows the shopper's own photo before upload (URL.createObjectURL)
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}
CORS_METHODS = "GET, POST, DELETE, OPTIONS"
CORS_MAX_AGE_S = 600


def install_security(app: Flask, cors_origins: tuple[str, ...]) -> None:
    """Add the security headers and the CORS policy to every response of ``app``."""
    allow_any = "*" in cors_origins

    @app.after_request
    def _secure(response: Response) -> Response:
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        origin = request.headers.get("Origin")
        if origin and request.path.startswith("/api/"):
            response.vary.add("Origin")
            if allow_any or origin.rstrip("/") in cors_origins:
                response.headers["Access-Control-Allow-Origin"] = origin
                response.headers["Access-Control-Expose-Headers"] = "Retry-After"
                if request.method == "OPTIONS":  # a preflight: Flask's automatic OPTIONS answer
                    response.headers["Access-Control-Allow-Methods"] = CORS_METHODS
                    response.headers["Access-Control-Allow-Headers"] = "Content-Type, Authorization, X-API-Key"
                    response.headers["Access-Control-Max-Age"] = str(CORS_MAX_AGE_S)
        return response
