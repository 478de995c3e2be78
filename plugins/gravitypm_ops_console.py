"""GravityPM ops console: "Checklists" and "Backups" under the Airflow UI's Browse menu, and /metrics.

A FastAPI app mounted by the API server at /gravitypm:

    /gravitypm/checklists       completion history (filters: since, until, checklist, outcome)
    /gravitypm/checklists.csv   the same records as CSV
    /gravitypm/backups          per kind: newest backups, age, size, verification, size chart
    /gravitypm/metrics          Prometheus text format

Plugin apps are not protected by Airflow by default. The pages require Airflow's own auth (the UI's
session cookie or `Authorization: Bearer <JWT>`) and the PLUGINS view permission. /metrics accepts
the same, or the static scrape token kept as the password of connection `gravitypm_metrics` (Airflow's
JWTs expire, a Prometheus scrape config should not have to). The page logic is
include/gravitypm_ops/console/; this file only wires routes and auth.

Every task process imports every plugin (for macros), so nothing heavy happens at import: the
FastAPI app (FastAPI and Airflow's auth stack, ~1 s of imports) is built when the API server asks.
"""

# No `from __future__ import annotations`: FastAPI must see the routes' real annotation objects, which
# live inside console_app().
from functools import cache

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/gravitypm"
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@cache
def console_app():
    import asyncio
    import hmac
    from datetime import UTC, datetime
    from typing import Annotated

    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.core_api.security import get_user, requires_access_view
    from fastapi import APIRouter, Depends, FastAPI, Request
    from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, StreamingResponse
    from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

    from gravitypm_ops.console import html as console_html
    from gravitypm_ops.console import metrics as console_metrics
    from gravitypm_ops.console import views as console_views

    plugins_view = requires_access_view(AccessView.PLUGINS)
    bearer = HTTPBearer(auto_error=False)

    def open_vault():
        # Per request: the config Variable and the gravitypm_aws connection may change at any time.
        from gravitypm_ops.config import load_config
        from gravitypm_ops.vault.store import Vault

        return Vault.from_config(load_config())

    def now() -> datetime:
        return datetime.now(UTC)

    async def metrics_access(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
    ) -> None:
        """The scrape token (constant-time compare) or, failing that, exactly the pages' auth."""
        if credentials is not None:
            expected = await asyncio.to_thread(console_views.scrape_token)
            if expected and hmac.compare_digest(credentials.credentials.encode(), expected.encode()):
                return
        plugins_view(request, await get_user(request, None, credentials))

    pages = APIRouter(dependencies=[Depends(plugins_view)])

    @pages.get("/", include_in_schema=False)
    def index(request: Request):
        return RedirectResponse(request.url_for("checklists"))

    @pages.get("/checklists", response_class=HTMLResponse)
    def checklists(request: Request):
        status, html = console_views.checklists_view(request.query_params, open_vault, now())
        return HTMLResponse(html, status_code=status, headers=console_html.PAGE_HEADERS)

    @pages.get("/checklists.csv")
    def checklists_csv(request: Request):
        status, headers, body = console_views.checklists_csv_view(request.query_params, open_vault, now())
        return StreamingResponse(body, status_code=status, headers=headers)

    @pages.get("/backups", response_class=HTMLResponse)
    def backups():
        status, html = console_views.backups_view(open_vault, now())
        return HTMLResponse(html, status_code=status, headers=console_html.PAGE_HEADERS)

    app = FastAPI(title="GravityPM ops console", docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(pages)

    @app.get("/metrics", dependencies=[Depends(metrics_access)], response_class=PlainTextResponse)
    def metrics():
        from gravitypm_ops.console.agents import read_host_agents  # the API server has DB access
        from gravitypm_ops.housekeeping.metadb import api_server_figures

        text = console_metrics.metrics_text(open_vault, now(), read_metadb=api_server_figures,
                                            read_agents=read_host_agents)
        return PlainTextResponse(text, media_type=PROMETHEUS_CONTENT_TYPE)

    return app


class GravityPMOpsConsole(AirflowPlugin):
    name = "gravitypm_ops_console"
    external_views = [
        {"name": "Checklists", "href": "gravitypm/checklists", "destination": "nav", "category": "browse",
         "url_route": "gravitypm-checklists"},
        {"name": "Backups", "href": "gravitypm/backups", "destination": "nav", "category": "browse",
         "url_route": "gravitypm-backups"},
    ]

    @property
    def fastapi_apps(self):
        return [{"app": console_app(), "url_prefix": URL_PREFIX, "name": "GravityPM ops console"}]
