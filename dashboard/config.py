"""The dashboard's config file (``configs/dashboard.yaml``), validated with errors that name the key.

Relative paths are taken relative to the working directory the command runs in.

Example::

    cfg = load_dashboard_config("configs/dashboard.yaml")
    cfg.database_url          # 'sqlite:///var/dashboard/dashboard.db'
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from brightkitchen.broker import BrokerSettings
from brightkitchen.config import load_config


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MqttSection(BrokerSettings):
    username: str | None = Field(None, description="the dashboard's broker login (reads bk/v1/#)")
    client_id: str = Field(
        "bk-dashboard-ingest-1",
        max_length=64,
        description="stable per worker process: the broker keeps its session (and queued messages) by it",
    )
    share_group: str | None = Field(
        "dashboard", pattern=r"^[A-Za-z0-9_-]+$", description="shared-subscription group; null = no sharing"
    )
    session_expiry_s: int = Field(7 * 24 * 3600, ge=0, description="how long the broker keeps the session")


class S3Section(_Strict):
    bucket: str = Field(min_length=3, max_length=63)
    prefix: str = Field("", description="key prefix inside the bucket, e.g. 'media/'")
    endpoint_url: str | None = Field(None, description="for MinIO, Ceph, moto; omit for AWS")
    region: str | None = None
    access_key_id: str | None = Field(None, description="omit to use boto3's usual credential chain")
    secret_access_key: str | None = None


class MediaSection(_Strict):
    backend: Literal["filesystem", "s3"] = "filesystem"
    path: Path = Field(Path("var/dashboard/media"), description="filesystem backend: root folder")
    s3: S3Section | None = None
    max_upload_bytes: int = Field(8 * 1024 * 1024, gt=0, description="largest rectification photo accepted")

    @model_validator(mode="after")
    def _s3_needs_section(self) -> MediaSection:
        if self.backend == "s3" and self.s3 is None:
            raise ValueError("backend 's3' needs an 's3:' section with at least 'bucket'")
        return self


class HttpSection(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    secure_cookies: bool = Field(True, description="send the session cookie over HTTPS only")
    session_max_age_s: int = Field(12 * 3600, gt=0)
    login_max_failures: int = Field(
        5,
        ge=1,
        description="failed logins per username and address per window; 4x that per address (any username) "
        "and per username (any address)",
    )
    login_window_s: int = Field(300, ge=1, description="how long a failed login counts")
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="addresses or CIDR networks of the reverse proxies / load balancers in front; from these"
        " peers X-Forwarded-For and X-Forwarded-Proto are believed, so the login limit and the audit log see"
        " the client, not the proxy",
    )
    sse_poll_s: float = Field(
        1.0, gt=0, description="how often each web process looks for new alerts for its live streams"
    )
    display_timezone: str = Field("UTC", description="IANA zone for times in the UI, e.g. Asia/Shanghai")
    public_url: str | None = Field(
        None,
        pattern=r"^https?://[^/]+$",
        description="how edge agents reach this dashboard (model downloads), e.g. https://dash.example.com;"
        " absent: the address the request came in on",
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or CIDR network (e.g. 10.0.0.0/8)") from None
        return value

    @field_validator("display_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (use an IANA name such as Asia/Shanghai)"
            ) from None
        return value


class RegistrySection(_Strict):
    max_archive_bytes: int = Field(512 * 1024**2, gt=0, description="largest model archive accepted")
    download_token_ttl_s: int = Field(
        24 * 3600, gt=0, description="how long a rollout's download token works (renewed on promote)"
    )
    rollout_reply_timeout_s: int = Field(
        1800,
        gt=0,
        description="an agent sent a model (or sent back) that has not answered, or switched and not run "
        "it without camera errors, after this long is given up: its rollout fails",
    )


class DashboardConfig(_Strict):
    database_url: str = Field(
        "sqlite:///var/dashboard/dashboard.db",
        description="SQLAlchemy URL; postgresql+psycopg://user@host/db for PostgreSQL",
    )
    database_schema: str | None = Field(
        None, pattern=r"^[a-z_][a-z0-9_]*$", description="PostgreSQL schema to use (search_path)"
    )
    auto_migrate: bool = Field(True, description="upgrade the database to the newest schema at start")
    secret_key_file: Path = Field(
        Path("var/dashboard/secret_key"), description="signs session cookies; created (0600) if missing"
    )
    mqtt: MqttSection = MqttSection()
    media: MediaSection = MediaSection()
    http: HttpSection = HttpSection()
    registry: RegistrySection = RegistrySection()

    def secret_key(self) -> str:
        """The cookie-signing key, generated on first use."""
        path = self.secret_key_file
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(48))
        return path.read_text(encoding="utf-8").strip()


def load_dashboard_config(path: Path | str) -> DashboardConfig:
    """Read and validate a dashboard config file (``ConfigError`` names the file and key)."""
    return load_config(path, DashboardConfig)
