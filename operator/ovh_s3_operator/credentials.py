"""One set of OVH API credentials: where it comes from, which kind it is, what is missing.

The operator's own set comes from its environment; an OVHProject's from a Secret whose keys have the
same names (``OVH_APPLICATION_KEY``, ``OVH_APPLICATION_SECRET``, ``OVH_CONSUMER_KEY``, or
``OVH_CLIENT_ID`` and ``OVH_CLIENT_SECRET`` for an OAuth2 service account). Secret values are
``SecretStr``: they never show in a repr, a log line or a message.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import SecretStr

if TYPE_CHECKING:
    from .config import Settings

ENVIRONMENT = "the operator's environment"
APPLICATION_KEYS = ("OVH_APPLICATION_KEY", "OVH_APPLICATION_SECRET", "OVH_CONSUMER_KEY")
OAUTH2_KEYS = ("OVH_CLIENT_ID", "OVH_CLIENT_SECRET")


@dataclass(frozen=True)
class Credentials:
    endpoint: str
    application_key: str | None = None
    application_secret: SecretStr | None = None
    consumer_key: SecretStr | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    source: str = ENVIRONMENT
    """Where the values come from, for messages: the operator's environment, or a Secret."""

    @classmethod
    def from_settings(cls, settings: Settings) -> Credentials:
        return cls(endpoint=settings.ovh_endpoint, application_key=settings.ovh_application_key,
                   application_secret=settings.ovh_application_secret, consumer_key=settings.ovh_consumer_key,
                   client_id=settings.ovh_client_id, client_secret=settings.ovh_client_secret)

    @classmethod
    def from_values(cls, endpoint: str, values: Mapping[str, str], source: str) -> Credentials:
        """From a Secret's decoded data (``OVH_*`` keys; blank values count as absent)."""
        def plain(key: str) -> str | None:
            return values.get(key, "").strip() or None

        def secret(key: str) -> SecretStr | None:
            value = plain(key)
            return SecretStr(value) if value else None

        return cls(endpoint=endpoint, application_key=plain("OVH_APPLICATION_KEY"),
                   application_secret=secret("OVH_APPLICATION_SECRET"), consumer_key=secret("OVH_CONSUMER_KEY"),
                   client_id=plain("OVH_CLIENT_ID"), client_secret=secret("OVH_CLIENT_SECRET"), source=source)

    @property
    def auth_mode(self) -> str | None:
        """``"application"``, ``"oauth2"``, or None when no complete set is there."""
        if self.application_key and self.application_secret and self.consumer_key:
            return "application"
        if self.client_id and self.client_secret:
            return "oauth2"
        return None

    def missing(self) -> list[str]:
        """The keys to set when no complete set is there (those of OAuth2 if one of them is set)."""
        if self.auth_mode is not None:
            return []
        if self.client_id or self.client_secret:
            return [name for name, value in zip(OAUTH2_KEYS, (self.client_id, self.client_secret), strict=True)
                    if not value]
        values = (self.application_key, self.application_secret, self.consumer_key)
        return [name for name, value in zip(APPLICATION_KEYS, values, strict=True) if not value]

    def fingerprint(self) -> str:
        """Tells credential sets apart without revealing them (a SHA-256 of every value)."""
        parts = [self.endpoint, self.application_key, self.client_id,
                 *(s.get_secret_value() if s else None
                   for s in (self.application_secret, self.consumer_key, self.client_secret))]
        return hashlib.sha256("\0".join(part or "" for part in parts).encode()).hexdigest()
