"""How a process reaches the MQTT broker: address, login and TLS, shared by the edge and the dashboard.

Each side's config extends ``BrokerSettings`` with its own fields (the edge's stats interval, the
dashboard's shared-subscription group); ``apply_login`` puts login and TLS on a paho client.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class TlsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ca_file: Path | None = Field(None, description="CA bundle that signed the broker's certificate")
    cert_file: Path | None = Field(None, description="client certificate, where the broker asks for one")
    key_file: Path | None = None
    insecure: bool = Field(False, description="skip hostname verification (testing only)")


class BrokerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    password_file: Path | None = Field(None, description="read the password from this file instead")
    tls: TlsSettings | None = None
    keepalive_s: int = Field(30, ge=5, le=3600)

    @model_validator(mode="after")
    def _one_password(self) -> BrokerSettings:
        if self.password is not None and self.password_file is not None:
            raise ValueError("give password or password_file, not both")
        return self

    def resolved_password(self) -> str | None:
        """The password, read from ``password_file`` where that is given."""
        if self.password_file is not None:
            return self.password_file.read_text(encoding="utf-8").strip()
        return self.password


def apply_login(client: Any, settings: BrokerSettings) -> None:
    """Set username/password and TLS on a paho ``mqtt.Client`` (certificates are always verified)."""
    if settings.username is not None:
        client.username_pw_set(settings.username, settings.resolved_password())
    if settings.tls is not None:
        tls = settings.tls
        client.tls_set(
            ca_certs=str(tls.ca_file) if tls.ca_file else None,
            certfile=str(tls.cert_file) if tls.cert_file else None,
            keyfile=str(tls.key_file) if tls.key_file else None,
        )
        client.tls_insecure_set(tls.insecure)
