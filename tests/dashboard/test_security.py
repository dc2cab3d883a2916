"""Route-wide security checks, so a new route cannot forget them: every route needs a login, and every
state-changing route made with the session cookie needs the CSRF token."""

from __future__ import annotations

import re

import pytest
from fastapi.routing import APIRoute

pytestmark = pytest.mark.parametrize("db_config", ["sqlite"], indirect=True)  # routing, not storage
PUBLIC = {"/login", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}


def _routes(client) -> list[APIRoute]:
    """Every path operation, also those of included routers (FastAPI keeps them nested; no prefixes here)."""
    out, todo = [], list(client.app.routes)
    while todo:
        route = todo.pop()
        if isinstance(route, APIRoute):
            out.append(route)
        elif hasattr(route, "original_router"):
            todo += route.original_router.routes
    return out


def _fill(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "00000000-0000-0000-0000-000000000000", path)


def test_every_route_needs_a_login(web, tenants) -> None:
    c = web()
    checked = 0
    for route in _routes(c):
        if route.path in PUBLIC:
            continue
        for method in route.methods:
            r = c.request(method, _fill(route.path))
            assert r.status_code in (401, 303, 403), (method, route.path, r.status_code)
            if r.status_code == 303:
                assert r.headers["location"].startswith("/login")
            checked += 1
    assert checked > 20


def test_every_state_change_with_the_cookie_needs_csrf(login, tenants) -> None:
    c = login("admin")
    checked = 0
    for route in _routes(c):
        for method in route.methods - {"GET", "HEAD"}:
            r = c.request(method, _fill(route.path), json={}, headers={"Content-Type": "application/json"})
            assert r.status_code == 403 and "CSRF" in r.text, (method, route.path, r.status_code)
            checked += 1
    assert checked >= 9
