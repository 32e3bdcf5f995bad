"""The API docs page at `/`: Swagger UI from the files BentoML ships, with nothing loaded from another host.

BentoML's own page loads Google Tag Manager, Swagger UI asks validator.swagger.io to check the schema, and BentoML's
default service description shows badges from shields.io and others: a self-hosted service must not make its users'
browsers call third parties. This page is the same Swagger UI without any of them, over the schema of `/docs.json`
with scoreloop's own description (`/docs/openapi.json`), and its Content-Security-Policy lets the browser load
nothing from elsewhere.
"""

from __future__ import annotations

from starlette.responses import HTMLResponse

SCHEMA_ROUTE = "/docs/openapi.json"
DESCRIPTION = (
    "Scores records with the promoted champion: `/score`, `/score/columns` and `/score/arrow` for probabilities, "
    "scores and tiers, `/explain` for the reasons, `/feedback` for outcomes. `GET /metadata` says which model is "
    "served and its input schema."
)
POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"
)
PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="UTF-8">
  <title>scoreloop API</title>
  <link rel="stylesheet" type="text/css" href="./static_content/swagger-ui.css">
  <link rel="icon" type="image/png" href="./static_content/favicon-light-32x32.png" sizes="32x32">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="./static_content/swagger-ui-bundle.js" charset="UTF-8"></script>
  <script src="./static_content/swagger-ui-standalone-preset.js" charset="UTF-8"></script>
  <script>
    window.onload = () => {
      window.ui = SwaggerUIBundle({
        url: "./docs/openapi.json", dom_id: "#swagger-ui", deepLinking: true, validatorUrl: null,
        presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset], layout: "StandaloneLayout",
      });
    };
  </script>
</body>
</html>
"""


def docs_schema(schema: dict) -> dict:
    """BentoML's OpenAPI schema with scoreloop's description in place of BentoML's (and its badges)."""
    return {**schema, "info": {**schema["info"], "description": DESCRIPTION}}


def docs_page() -> HTMLResponse:
    """The page, with a policy that keeps the browser on this host."""
    return HTMLResponse(PAGE, headers={"content-security-policy": POLICY})
