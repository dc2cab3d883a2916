"""Broker logins and ACLs for Mosquitto: one login per restaurant, one for the dashboard.

``write_mosquitto_auth`` writes into one folder::

    passwd              Mosquitto password file (PBKDF2-SHA512, the ``$7$`` format of mosquitto_passwd)
    acl                 each restaurant writes only bk/v1/<id>/# and reads only its agents' command topics;
                        the dashboard reads bk/v1/# and writes command topics
    mosquitto-auth.conf ``include_dir``-ready lines: password_file, acl_file, allow_anonymous false
    credentials/<user>.txt  the plain password for that login (0600), for the edge box's password_file

Existing logins keep their passwords unless ``rotate`` is set, so re-running after adding a restaurant
does not lock out the others. The hash is computed here (identical to ``mosquitto_passwd``'s output,
checked in the tests) so no Mosquitto tools are needed on the dashboard host.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from brightkitchen.contract import TOPIC_ROOT

PBKDF2_ITERATIONS = 101  # mosquitto_passwd's default for $7$
SALT_BYTES = 12


def mosquitto_hash(password: str, salt: bytes | None = None) -> str:
    """The ``$7$`` PBKDF2-SHA512 hash Mosquitto 2 expects in its password file."""
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, PBKDF2_ITERATIONS)
    return f"$7${PBKDF2_ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def acl_text(restaurants: Iterable[str], dashboard_user: str) -> str:
    """The ACL file: tenants confined to their own subtree."""
    lines = [
        "# Written by `brightkitchen dashboard mqtt-credentials`; do not edit by hand.",
        f"user {dashboard_user}",
        f"topic read {TOPIC_ROOT}/#",
        f"topic write {TOPIC_ROOT}/+/agent/+/command",
        "",
    ]
    for rid in sorted(restaurants):
        lines += [
            f"user {rid}",
            f"topic write {TOPIC_ROOT}/{rid}/#",
            f"topic read {TOPIC_ROOT}/{rid}/agent/+/command",
            "",
        ]
    return "\n".join(lines)


@dataclass(frozen=True)
class AuthFiles:
    password_file: Path
    acl_file: Path
    conf_file: Path
    credentials_dir: Path
    created: list[str]


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def write_mosquitto_auth(
    out_dir: Path, restaurants: Iterable[str], dashboard_user: str = "dashboard", rotate: bool = False
) -> AuthFiles:
    """Write password file, ACL, conf snippet and per-login credentials; returns what it wrote."""
    out_dir = Path(out_dir)
    creds = out_dir / "credentials"
    restaurants = sorted(set(restaurants))
    if dashboard_user in restaurants:
        raise ValueError(f"the dashboard login {dashboard_user!r} clashes with a restaurant id")
    created = []
    entries = []
    for user in [dashboard_user, *restaurants]:
        cred = creds / f"{user}.txt"
        if cred.exists() and not rotate:
            password = cred.read_text(encoding="utf-8").strip()
        else:
            password = secrets.token_urlsafe(24)
            _write_private(cred, password + "\n")
            created.append(user)
        entries.append(f"{user}:{mosquitto_hash(password)}")
    passwd, acl, conf = out_dir / "passwd", out_dir / "acl", out_dir / "mosquitto-auth.conf"
    _write_private(passwd, "\n".join(entries) + "\n")
    _write_private(acl, acl_text(restaurants, dashboard_user))
    _write_private(
        conf,
        f"allow_anonymous false\npassword_file {passwd.resolve()}\nacl_file {acl.resolve()}\n",
    )
    return AuthFiles(passwd, acl, conf, creds, created)
