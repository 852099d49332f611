"""/docs: Swagger UI from the files of the ``swagger-ui-bundle-v2`` package, served by this app.

FastAPI's default page loads Swagger UI from a CDN, which a hospital network or an offline laptop cannot
reach, and runs an inline script that the Content-Security-Policy (``script-src 'self'``) forbids. This
page loads the bundle and a small initialiser from this origin only, so it works offline and under the
same policy as the web app.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

DOCS_URL = "/docs"
ASSETS_URL = "/docs/assets"

_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title} - API documentation</title>
  <link rel="stylesheet" href="{assets}/swagger-ui.css">
  <link rel="icon" type="image/png" href="{assets}/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{assets}/swagger-ui-bundle.js"></script>
  <script src="{docs}/init.js"></script>
</body>
</html>
"""

_INIT = """window.ui = SwaggerUIBundle({{
  url: "{openapi_url}",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
}});
"""


def install(app: FastAPI) -> None:
    """Serve /docs, its initialiser and Swagger UI's assets (create the app with ``docs_url=None``)."""
    page = _PAGE.format(title=app.title, assets=ASSETS_URL, docs=DOCS_URL)
    init = _INIT.format(openapi_url=app.openapi_url)
    app.mount(ASSETS_URL, StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui")

    @app.get(DOCS_URL, include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get(f"{DOCS_URL}/init.js", include_in_schema=False)
    def docs_init() -> Response:
        return Response(init, media_type="text/javascript")
