"""The web UI and REST API: login, CSRF, roles, tenant isolation (pages, API, media), review and answer."""

from __future__ import annotations

import re
import secrets

from sqlalchemy import select

from dashboard import admin
from dashboard.models import AuditLog, Event, Response


def _csrf(html: str) -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', html)[1]


def test_login_logout_and_cookie_flags(web, tenants) -> None:
    c = web()
    assert c.get("/queue").headers["location"].startswith("/login?next=")
    token = _csrf(c.get("/login").text)
    r = c.post("/login", data={"username": "insp-north", "password": "secret-pw", "csrf_token": token})
    assert r.status_code == 303
    cookie = r.headers["set-cookie"]
    assert "bk_session=" in cookie and "secure" in cookie.lower() and "httponly" in cookie.lower()
    assert "samesite=lax" in cookie.lower()
    assert c.get("/queue").status_code == 200
    assert c.post("/logout", data={}).status_code == 403  # no CSRF token
    assert c.post("/logout", data={"csrf_token": _csrf(c.get("/queue").text)}).status_code == 303
    assert c.get("/queue").status_code == 303


def test_login_needs_csrf_and_is_rate_limited(web, tenants) -> None:
    c = web()
    assert c.post("/login", data={"username": "admin", "password": "secret-pw"}).status_code == 403
    token = _csrf(c.get("/login").text)
    for _ in range(5):
        assert (
            c.post(
                "/login", data={"username": "admin", "password": "nope-nope", "csrf_token": token}
            ).status_code
            == 401
        )
    blocked = c.post("/login", data={"username": "admin", "password": "secret-pw", "csrf_token": token})
    assert blocked.status_code == 429  # even the right password, for a while


def test_restaurant_sees_only_its_own_alerts(login, web, seeded) -> None:
    a, b = str(seeded["r-a"]), str(seeded["r-b"])
    c = login("rest-a")
    portal = c.get("/portal").text
    assert a in portal and b not in portal
    assert [i["id"] for i in c.get("/api/v1/alerts").json()["items"]] == [a]
    assert c.get(f"/alerts/{a}").status_code == 200
    assert c.get(f"/alerts/{b}").status_code == 404
    assert c.get(f"/api/v1/alerts/{b}").status_code == 404
    assert c.get(f"/media/{seeded['media'][a]}").status_code == 200
    assert c.get(f"/media/{seeded['media'][b]}").status_code == 404  # another tenant's real media id
    assert c.get(f"/media/{secrets.token_urlsafe(16)}").status_code == 404  # a guessed one
    assert c.get("/media/../../etc/passwd").status_code == 404
    assert c.get("/queue").status_code == 403
    assert web().get(f"/media/{seeded['media'][a]}").status_code == 401  # no session at all


def test_inspector_sees_only_their_districts(login, seeded) -> None:
    a, b = str(seeded["r-a"]), str(seeded["r-b"])
    c = login("insp-north")
    queue = c.get("/queue").text
    assert a in queue and b not in queue
    assert c.get(f"/alerts/{b}").status_code == 404
    assert c.get(f"/media/{seeded['media'][b]}").status_code == 404
    assert {i["id"] for i in login("admin").get("/api/v1/alerts").json()["items"]} == {a, b}
    assert (
        c.get("/api/v1/health").json()["cameras"] == [c.get("/api/v1/health").json()["cameras"][0]]
        and c.get("/api/v1/health").json()["cameras"][0]["restaurant"] == "r-a"
    )


def test_review_flow_is_audited_and_role_checked(login, seeded, sessions) -> None:
    a = str(seeded["r-a"])
    insp = login("insp-north")
    r = insp.post(f"/api/v1/alerts/{a}/review", json={"verdict": "confirmed"})
    assert r.status_code == 403  # cookie without CSRF header
    r = insp.post(
        f"/api/v1/alerts/{a}/review", json={"verdict": "false_positive"}, headers={"X-CSRF-Token": insp.csrf}
    )
    assert r.status_code == 422  # a false positive needs a reason
    r = insp.post(
        f"/alerts/{a}/review",
        data={"verdict": "false_positive", "reason": "knife, not meat", "csrf_token": insp.csrf},
    )
    assert r.status_code == 303
    rest = login("rest-a")
    assert (
        rest.post(
            f"/api/v1/alerts/{a}/review", json={"verdict": "confirmed"}, headers={"X-CSRF-Token": rest.csrf}
        ).status_code
        == 403
    )
    detail = insp.get(f"/api/v1/alerts/{a}").json()
    assert detail["verdict"] == "false_positive" and detail["reviews"][0]["reason"] == "knife, not meat"
    assert "false_positive by insp-north" in [t["what"] for t in detail["timeline"]]
    with sessions() as s:
        log = s.scalars(select(AuditLog).where(AuditLog.action == "review")).one()
        assert log.target_id == a and log.detail["verdict"] == "false_positive"
    assert "knife, not meat" in insp.get(f"/alerts/{a}").text


def test_restaurant_answers_with_a_photo(login, seeded, sessions, jpeg) -> None:
    a = str(seeded["r-a"])
    rest = login("rest-a")
    r = rest.post(
        f"/alerts/{a}/response",
        data={"note": "Separated the boards", "csrf_token": rest.csrf},
        files={"photo": ("fix.jpg", jpeg, "image/jpeg")},
    )
    assert r.status_code == 303, r.text
    bad = rest.post(
        f"/alerts/{a}/response",
        data={"note": "x", "csrf_token": rest.csrf},
        files={"photo": ("x.jpg", b"GIF89a...", "image/jpeg")},
    )
    assert bad.status_code == 422
    other = login("rest-b")
    assert (
        other.post(f"/alerts/{a}/response", data={"note": "hi", "csrf_token": other.csrf}).status_code == 404
    )
    detail = rest.get(f"/api/v1/alerts/{a}").json()
    photo_url = detail["responses"][0]["photo"]["url"]
    assert rest.get(photo_url).content == jpeg
    assert login("insp-north").get(photo_url).status_code == 200
    assert other.get(photo_url).status_code == 404
    insp = login("insp-north")
    assert insp.post(f"/alerts/{a}/response", data={"note": "x", "csrf_token": insp.csrf}).status_code == 403
    with sessions() as s:
        assert s.get(Event, seeded["r-a"]).responded_at is not None
        assert s.scalars(select(Response)).one().note == "Separated the boards"
        assert s.scalars(select(AuditLog).where(AuditLog.action == "response")).one().target_id == a


def test_api_tokens(web, seeded, sessions) -> None:
    with sessions.begin() as s:
        token = admin.create_token(s, "insp-north", "ci")
    c = web()
    auth = {"Authorization": f"Bearer {token}"}
    assert [i["restaurant"] for i in c.get("/api/v1/alerts", headers=auth).json()["items"]] == ["r-a"]
    r = c.post(f"/api/v1/alerts/{seeded['r-a']}/review", json={"verdict": "confirmed"}, headers=auth)
    assert r.status_code == 200 and r.json()["verdict"] == "confirmed"  # no CSRF needed with a token
    assert c.get("/api/v1/alerts", headers={"Authorization": "Bearer bkt_wrong"}).status_code == 401
    assert c.get("/api/v1/me", headers=auth).json()["districts"] == ["North"]


def test_pages_render(login, seeded) -> None:
    c = login("admin")
    a = str(seeded["r-a"])
    for path in (
        "/queue",
        "/queue?status=unreviewed&district=North&rule=board_misuse&since=2020-01-01",
        f"/alerts/{a}",
        "/health",
        "/stats",
        "/stats?days=7",
    ):
        r = c.get(path)
        assert r.status_code == 200, (path, r.text[:500])
    assert "<svg" in c.get("/stats").text
    health = c.get("/health").text
    assert "box-1" in health and "12.5" in health and "bk-detector 1.0.0" in health
    assert "box-1" not in login("rest-b").get("/health").text
    assert c.get("/").headers["location"] == "/queue"
    assert login("rest-a").get("/").headers["location"] == "/portal"
    docs = c.get("/docs").text
    assert "cdn" not in docs.lower() and c.get("/static-offline-docs/swagger-ui-bundle.js").status_code == 200
    paths = c.get("/openapi.json").json()["paths"]
    assert {
        "/api/v1/alerts",
        "/api/v1/alerts/{event_id}/review",
        "/api/v1/alerts/{event_id}/response",
        "/api/v1/health",
        "/api/v1/stats",
        "/media/{media_id}",
    } <= set(paths)


def test_login_redirects_only_inside_the_site(web, tenants) -> None:
    for target, expected in (("/stats", "/stats"), ("//evil.example/x", "/"), ("https://evil.example", "/")):
        c = web()
        token = _csrf(c.get("/login").text)
        r = c.post(
            "/login", data={"username": "admin", "password": "secret-pw", "csrf_token": token, "next": target}
        )
        assert r.headers["location"] == expected


def test_password_change_ends_sessions(login, sessions, tenants) -> None:
    c = login("insp-north")
    assert c.get("/queue").status_code == 200
    with sessions.begin() as s:
        admin.set_password(s, "insp-north", "another-password")
    assert c.get("/queue").status_code == 303


def test_dead_letters_for_admins_only(login, persister, tenants) -> None:
    persister.handle("bk/v1/r-a/camera/cam-1/event", b"{oops")
    rows = login("admin").get("/api/v1/dead-letters").json()
    assert [(r["reason"], r["payload_head"]) for r in rows] == [("bad_json", "{oops")]
    assert login("insp-north").get("/api/v1/dead-letters").status_code == 403


def test_admin_api_registers_restaurants_cameras_users(web, sessions, tenants) -> None:
    with sessions.begin() as s:
        token = admin.create_token(s, "admin", "city-platform")
        insp_token = admin.create_token(s, "insp-north", "x")
    c = web()
    auth = {"Authorization": f"Bearer {token}"}
    r = c.post("/api/v1/restaurants", json={"id": "r-c", "name": "C", "district": "North"}, headers=auth)
    assert r.status_code == 201
    assert (
        c.post(
            "/api/v1/restaurants", json={"id": "r-c", "name": "C", "district": "North"}, headers=auth
        ).status_code
        == 409
    )
    assert (
        c.post(
            "/api/v1/restaurants", json={"id": "bad id!", "name": "C", "district": "N"}, headers=auth
        ).status_code
        == 422
    )
    r = c.post("/api/v1/restaurants/r-c/cameras", json={"id": "cam-7"}, headers=auth)
    assert r.status_code == 201 and [cam["id"] for cam in r.json()["cameras"]] == ["cam-7"]
    r = c.post(
        "/api/v1/users",
        json={"username": "rest-c", "password": "long-enough", "role": "restaurant", "restaurant": "r-c"},
        headers=auth,
    )
    assert r.status_code == 201 and r.json()["restaurant"] == "r-c"
    insp = {"Authorization": f"Bearer {insp_token}"}
    assert (
        c.post(
            "/api/v1/restaurants", json={"id": "r-d", "name": "D", "district": "North"}, headers=insp
        ).status_code
        == 403
    )
    assert {r["id"] for r in c.get("/api/v1/restaurants", headers=insp).json()} == {"r-a", "r-c"}
    assert c.get("/api/v1/users", headers=insp).status_code == 403


def test_times_shown_in_the_display_time_zone(db_config, sessions, persister, seeded) -> None:
    from zoneinfo import ZoneInfo

    from fastapi.testclient import TestClient

    from dashboard.models import Event
    from dashboard.web.app import create_app

    http = db_config.http.model_copy(update={"display_timezone": "Asia/Shanghai"})
    app = create_app(db_config.model_copy(update={"http": http}), sessions=sessions, store=persister.store)
    c = TestClient(app, base_url="https://testserver", follow_redirects=False)
    token = _csrf(c.get("/login").text)
    c.post("/login", data={"username": "admin", "password": "secret-pw", "csrf_token": token})
    with sessions() as s:
        started = s.get(Event, seeded["r-a"]).started_at
    local = started.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M:%S")
    page = c.get(f"/alerts/{seeded['r-a']}").text
    assert local in page and "Started (Asia/Shanghai)" in c.get("/queue").text
    day = started.astimezone(ZoneInfo("Asia/Shanghai")).date().isoformat()
    assert c.get(f"/api/v1/alerts?since={day}&until={day}").json()["total"] == 2
    assert c.get(f"/api/v1/alerts?since={day}&until={day}&tz=Mars/Base").status_code == 422


def test_statistics_numbers(login, seeded) -> None:
    c = login("admin")
    for rid, verdict in (("r-a", "false_positive"), ("r-b", "confirmed")):
        r = c.post(
            f"/api/v1/alerts/{seeded[rid]}/review",
            json={"verdict": verdict, "reason": "seen"},
            headers={"X-CSRF-Token": c.csrf},
        )
        assert r.status_code == 200
    s = c.get("/api/v1/stats?days=7").json()
    assert len(s["days"]) == 7 and sum(s["per_day_by_rule"]["board_misuse"]) == 2
    assert s["per_day_by_rule"]["board_misuse"][-1] + s["per_day_by_rule"]["board_misuse"][-2] == 2
    assert [(r["key"], r["reviewed"], r["rate"]) for r in s["fp_rate_by_rule"]] == [("board_misuse", 2, 0.5)]
    assert [r["key"] for r in s["fp_rate_by_model"]] == ["bk-detector 1.0.0"]
    assert s["time_to_review"]["count"] == 2 and s["time_to_review"]["median_s"] > 0
    assert sorted(n for _, n in s["per_restaurant"]) == [1, 1]
    inspector = login("insp-north").get("/api/v1/stats?days=7").json()
    assert [n for _, n in inspector["per_restaurant"]] == [1]
