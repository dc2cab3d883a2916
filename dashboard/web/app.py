"""The web app: wiring only (config, database, media store, middleware, routers, optional ingest)."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from fastapi_offline import FastAPIOffline
from jinja2 import pass_context
from sqlalchemy.orm import Session, sessionmaker
from starlette.middleware.sessions import SessionMiddleware
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from brightkitchen import __version__
from dashboard.config import DashboardConfig
from dashboard.db import open_database
from dashboard.media import MediaStore, open_store
from dashboard.web.auth import CSRF_FIELD, LoginRequired, csrf_token
from dashboard.web.login_limit import LoginLimiter
from dashboard.web.routers import (
    alerts,
    datasets,
    dead_letters,
    health,
    live,
    media,
    models,
    responses,
    restaurants,
    reviews,
    rollouts,
    session,
    stats,
    users,
)

HERE = Path(__file__).parent
log = logging.getLogger(__name__)
ROUTERS = (
    session,
    alerts,
    reviews,
    responses,
    media,
    live,
    health,
    stats,
    dead_letters,
    restaurants,
    users,
    datasets,
    models,
    rollouts,
)


def _template_globals(request: Request) -> dict[str, object]:
    return {
        "tz_name": request.app.state.cfg.http.display_timezone,
        "principal": getattr(request.state, "principal", None),
        "csrf_token": csrf_token(request),
        "csrf_field": CSRF_FIELD,
        "version": __version__,
    }


@pass_context
def _when(context: dict[str, Any], value: datetime | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """A UTC time as the UI shows it: in ``http.display_timezone``."""
    if value is None:
        return ""
    return value.astimezone(ZoneInfo(context["tz_name"])).strftime(fmt)


templates = Jinja2Templates(directory=HERE / "templates", context_processors=[_template_globals])
templates.env.filters["when"] = _when


def create_app(
    cfg: DashboardConfig,
    sessions: sessionmaker[Session] | None = None,
    store: MediaStore | None = None,
    with_ingest: bool = False,
) -> FastAPI:
    """Build the app; ``with_ingest`` also runs an ingest worker in this process (single-box demo)."""
    if sessions is None:
        _, sessions = open_database(cfg)
    store = store or open_store(cfg.media)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        thread = None
        if with_ingest:
            from dashboard.deploy import ingest_worker

            worker = ingest_worker(sessions, cfg, store)
            thread = threading.Thread(target=worker.run_forever, args=(stop,), name="ingest", daemon=True)
            thread.start()
            log.info("ingest worker started in the web process")
        yield
        stop.set()
        if thread is not None:
            thread.join(timeout=30)

    app = FastAPIOffline(  # /docs and /redoc from bundled assets: no CDN, nothing fetched at run time
        title="Bright Kitchen dashboard",
        version=__version__,
        description="Alerts from kitchen cameras: review, rectification, health and statistics. "
        "Authenticate with `Authorization: Bearer <token>` (`brightkitchen dashboard create-token`).",
        lifespan=lifespan,
    )
    app.state.cfg = cfg
    app.state.sessions = sessions
    app.state.store = store
    app.state.templates = templates
    app.state.alert_watch = live.AlertWatch(sessions, cfg.http.sse_poll_s)
    app.state.login_limiter = LoginLimiter(cfg.http.login_max_failures, cfg.http.login_window_s)
    app.add_middleware(
        SessionMiddleware,
        secret_key=cfg.secret_key(),
        session_cookie="bk_session",
        max_age=cfg.http.session_max_age_s,
        same_site="lax",
        https_only=cfg.http.secure_cookies,
    )

    @app.exception_handler(LoginRequired)
    async def _to_login(request: Request, _exc: LoginRequired) -> RedirectResponse:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)

    @app.middleware("http")
    async def _security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if not request.url.path.startswith(("/docs", "/redoc")):
            response.headers.setdefault(
                "Content-Security-Policy",
                "default-src 'self'; img-src 'self' data: blob:; media-src 'self'; "
                "style-src 'self' 'unsafe-inline'",
            )
        return response

    if cfg.http.trusted_proxies:  # added last: outermost, so every other layer sees the client's address
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=cfg.http.trusted_proxies)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    for module in ROUTERS:
        app.include_router(module.router)
    return app
