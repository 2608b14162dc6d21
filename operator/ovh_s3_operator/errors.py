"""Failures the operator reports, and the one place that maps them to kopf's retry behaviour.

Every error carries a CamelCase ``reason`` and a short ``message`` that says what to fix; both go to
the resource's Ready condition and the log, so neither may ever contain key material.
"""

from __future__ import annotations

import enum

import kopf

from .config import Settings


class Retry(enum.Enum):
    """When to try again after a failure."""

    ON_CHANGE = "on-change"  # only a spec change can help
    SOON = "soon"  # transient: OVH or Kubernetes hiccup
    CONFLICT = "conflict"  # something outside the resource must change (e.g. a foreign Secret)
    LATER = "later"  # a human must act outside the resource (credentials, OVH refusal)


class OperatorError(Exception):
    """A failure with a condition reason and a message safe to show to users."""

    reason = "Error"
    retry = Retry.SOON

    def __init__(self, message: str, *, reason: str | None = None, retry: Retry | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        if retry is not None:
            self.retry = retry


class InvalidSpec(OperatorError):
    reason = "InvalidSpec"
    retry = Retry.ON_CHANGE


class SecretConflict(OperatorError):
    reason = "SecretConflict"
    retry = Retry.CONFLICT


class OVHCredentialsMissing(OperatorError):
    reason = "OVHCredentialsMissing"
    retry = Retry.LATER


class OVHCredentialsRejected(OperatorError):
    reason = "OVHCredentialsRejected"
    retry = Retry.LATER


class OVHRejected(OperatorError):
    """OVH refused a request as invalid (HTTP 400): retrying the same request will not help."""

    reason = "OVHRejected"
    retry = Retry.LATER


class OVHUnavailable(OperatorError):
    """OVH kept failing (429, 5xx, network, garbage answers) after the client's retries."""

    reason = "OVHUnavailable"


class OVHConflict(OperatorError):
    """OVH answered 409 (e.g. the user is not ready for that operation yet)."""

    reason = "OVHConflict"


class UserNotReady(OperatorError):
    reason = "UserNotReady"


class KubernetesAPIError(OperatorError):
    reason = "KubernetesAPIError"

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class OVHProjectError(OperatorError):
    """OVH_SERVICE_NAME does not name a project of the account, or is needed and not set."""

    reason = "OVHProjectError"
    retry = Retry.LATER


def to_kopf(error: OperatorError, settings: Settings, *,
            deleting: bool = False) -> kopf.PermanentError | kopf.TemporaryError:
    """The kopf exception that schedules the right retry for ``error``.

    ON_CHANGE and LATER failures end the handler (kopf.PermanentError), so that the next spec change
    runs it again at once; the periodic check retries LATER ones every PERMANENT_RETRY_DELAY. A
    deletion never fails permanently: kopf would release the finalizer and orphan the OVH user.
    """
    if error.retry is Retry.ON_CHANGE and not deleting:
        return kopf.PermanentError(error.message)
    if error.retry is Retry.LATER and not deleting:
        return kopf.PermanentError(f"{error.message} (retried on the next spec change and every "
                                   f"{settings.permanent_retry_delay:g}s)")
    delay = {
        Retry.SOON: settings.retry_delay,
        Retry.CONFLICT: settings.conflict_retry_delay,
    }.get(error.retry, settings.permanent_retry_delay)
    return kopf.TemporaryError(error.message, delay=delay)
