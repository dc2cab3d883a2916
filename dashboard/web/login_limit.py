"""Login rate limiting, counted in the database: every web process (and a restarted one) sees the same
failures, so running several behind a load balancer gives an attacker no more attempts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, case, delete, func, or_, select
from sqlalchemy.orm import Session

from dashboard.models import FailedLogin, now_utc

KEY_MAX_CHARS = 64  # the columns' length: an odd client address or a lower-cased name never overflows
SPREAD_FACTOR = 4  # per address (any username) and per username (any address): 4x the per-pair limit


@dataclass(frozen=True)
class LoginLimiter:
    """Blocks logins after, within the last ``window_s``, ``max_failures`` failures for one (address,
    username), or 4x that from one address, or 4x that for one username from any address.

    Each method works in the caller's session; the caller commits (with its audit row).
    """

    max_failures: int
    window_s: float

    def _cutoff(self, now: datetime) -> datetime:
        return now - timedelta(seconds=self.window_s)

    def blocked(self, db: Session, address: str, username: str) -> bool:
        address, username = _key(address, username)
        same_address = FailedLogin.address == address
        same_username = FailedLogin.username == username
        pair, by_address, by_username = db.execute(
            select(
                func.count(case((and_(same_address, same_username), 1))),
                func.count(case((same_address, 1))),
                func.count(case((same_username, 1))),
            ).where(FailedLogin.at >= self._cutoff(now_utc()), or_(same_address, same_username))
        ).one()
        spread_max = SPREAD_FACTOR * self.max_failures
        return pair >= self.max_failures or by_address >= spread_max or by_username >= spread_max

    def failed(self, db: Session, address: str, username: str) -> None:
        """Record a failure, and delete every failure older than the window so the table stays small."""
        address, username = _key(address, username)
        now = now_utc()
        db.execute(delete(FailedLogin).where(FailedLogin.at < self._cutoff(now)))
        db.add(FailedLogin(address=address, username=username, at=now))

    def succeeded(self, db: Session, address: str, username: str) -> None:
        """Forget this (address, username)'s failures; those counted per address or username stay."""
        address, username = _key(address, username)
        db.execute(
            delete(FailedLogin).where(FailedLogin.address == address, FailedLogin.username == username)
        )


def _key(address: str, username: str) -> tuple[str, str]:
    return address[:KEY_MAX_CHARS], username.lower()[:KEY_MAX_CHARS]
