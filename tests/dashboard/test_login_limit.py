"""The login rate limit is counted in the database: web processes on one database share it, one account
guessed from many addresses is blocked, a success clears its failures, and old failures expire."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from dashboard.config import DashboardConfig
from dashboard.db import open_database
from dashboard.models import AuditLog, FailedLogin, now_utc
from dashboard.web.app import create_app

MAX_FAILURES = 2  # per (address, username); 4x that per address and per username
WINDOW_S = 300


@pytest.fixture
def process(db_config: DashboardConfig, persister, tenants) -> Iterator[Callable[[], Callable[..., int]]]:
    """``process(trusted_proxies=...)`` starts one more web app on the shared database, with its own engine
    (as another ``dashboard serve`` would); it returns ``attempt(username, password, address,
    forwarded_for) -> status code``, ``address`` being the connecting peer."""
    http = db_config.http.model_copy(update={"login_max_failures": MAX_FAILURES, "login_window_s": WINDOW_S})
    engines, clients = [], []

    def start(trusted_proxies: list[str] | None = None) -> Callable[..., int]:
        cfg = db_config.model_copy(
            update={"http": http.model_copy(update={"trusted_proxies": trusted_proxies or []})}
        )
        engine, sessions = open_database(cfg)
        engines.append(engine)
        app = create_app(cfg, sessions=sessions, store=persister.store)

        def attempt(
            username: str,
            password: str = "wrong-password",
            address: str = "10.0.0.1",
            forwarded_for: str | None = None,
        ) -> int:
            c = TestClient(
                app, base_url="https://testserver", follow_redirects=False, client=(address, 50000)
            )
            if forwarded_for is not None:
                c.headers["X-Forwarded-For"] = forwarded_for
            clients.append(c)
            token = re.search(r'name="csrf-token" content="([^"]+)"', c.get("/login").text)[1]
            data = {"username": username, "password": password, "csrf_token": token}
            return c.post("/login", data=data).status_code

        return attempt

    yield start
    for c in clients:
        c.close()
    for e in engines:
        e.dispose()


def test_failures_on_one_process_block_logins_on_another(process) -> None:
    one, two = process(), process()
    assert one("Admin") == 401  # usernames are counted lower-cased
    assert two("admin") == 401
    assert one("admin", "secret-pw") == 429  # even the right password, on either process
    assert two("admin", "secret-pw") == 429
    assert process()("admin", "secret-pw") == 429  # and on one started (or restarted) later
    assert two("admin", "secret-pw", address="10.0.0.2") == 303  # another address is not blocked


def test_one_address_is_blocked_for_every_username_across_processes(process) -> None:
    one, two = process(), process()
    for i in range(4 * MAX_FAILURES):  # one failure per made-up username, half on each process
        assert (one, two)[i % 2](f"guess-{i}") == 401
    assert one("insp-north", "secret-pw") == 429
    assert two("insp-north", "secret-pw", address="10.0.0.2") == 303


def test_one_username_guessed_from_many_addresses_is_blocked(process) -> None:
    one, two = process(), process()
    for i in range(4 * MAX_FAILURES):  # one failure per address: each address is far below its limits
        assert (one, two)[i % 2]("admin", address=f"10.1.0.{i}") == 401
    assert one("admin", "secret-pw", address="10.2.0.1") == 429  # a fresh address: the account is blocked
    assert two("insp-north", "secret-pw", address="10.2.0.1") == 303  # other accounts are not


def test_a_success_on_one_process_clears_the_failures_counted_by_another(process, sessions) -> None:
    one, two = process(), process()
    assert one("admin") == 401
    assert one("admin", address="10.0.0.2") == 401
    assert two("admin", "secret-pw") == 303  # clears (10.0.0.1, admin) only
    with sessions() as s:
        assert s.scalars(select(FailedLogin.address)).all() == ["10.0.0.2"]
    assert one("admin") == 401  # one failure since the success, not two: not blocked
    assert one("admin", "secret-pw") == 303


def test_old_failures_expire_and_are_deleted(process, sessions) -> None:
    now = now_utc()
    with sessions.begin() as s:  # as another process would have left them
        for _ in range(4 * MAX_FAILURES):
            s.add(FailedLogin(address="10.0.0.1", username="admin", at=now - timedelta(seconds=WINDOW_S + 5)))
        for _ in range(MAX_FAILURES):
            s.add(FailedLogin(address="10.0.0.9", username="ml", at=now - timedelta(seconds=WINDOW_S - 60)))
    attempt = process()
    assert attempt("ml", "secret-pw", address="10.0.0.9") == 429  # recent: they count
    assert attempt("admin") == 401  # old: they do not, and this failure deletes them
    with sessions() as s:
        left = s.execute(select(FailedLogin.username, func.count()).group_by(FailedLogin.username)).all()
    assert sorted(left) == [("admin", 1), ("ml", MAX_FAILURES)]
    assert attempt("admin", "secret-pw") == 303


LB = "10.9.0.7"  # the load balancer every browser's connection comes through


def test_behind_a_trusted_proxy_the_limit_counts_the_client_not_the_proxy(process, sessions) -> None:
    attempt = process(trusted_proxies=["10.9.0.0/16"])
    for i in range(4 * MAX_FAILURES):  # one client guesses many usernames: its address gets blocked
        assert attempt(f"guess-{i}", address=LB, forwarded_for="203.0.113.5") == 401
    assert attempt("insp-north", "secret-pw", address=LB, forwarded_for="203.0.113.5") == 429
    # Another client through the same balancer is not: without the proxy setting every login is 429 here.
    assert attempt("insp-north", "secret-pw", address=LB, forwarded_for="203.0.113.7") == 303
    # A client cannot pick its address by prepending to the header: the rightmost untrusted hop counts.
    assert attempt("admin", "secret-pw", address=LB, forwarded_for="198.51.100.1, 203.0.113.5") == 429
    with sessions() as s:
        assert set(s.scalars(select(FailedLogin.address))) == {"203.0.113.5"}
        assert s.scalar(select(AuditLog.detail).where(AuditLog.action == "login"))["address"] == "203.0.113.7"


def test_forwarded_for_from_an_untrusted_peer_is_ignored(process) -> None:
    attempt = process(trusted_proxies=["10.9.0.0/16"])
    for i in range(4 * MAX_FAILURES):  # a new made-up X-Forwarded-For each time does not reset its count
        assert attempt(f"guess-{i}", address="198.51.100.9", forwarded_for=f"192.0.2.{i}") == 401
    assert attempt("admin", "secret-pw", address="198.51.100.9", forwarded_for="192.0.2.200") == 429
