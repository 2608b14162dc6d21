"""Every failure the operator knows, in one hierarchy.

Each error carries a CamelCase ``reason`` and a short ``message`` that says what to fix: both go to
the resource's Ready condition, its events and the log, so neither may ever contain key material.
``retry`` says what can make a new attempt succeed; :mod:`.controller` turns it into a delay.

The adapters raise these and nothing else: :mod:`.ovh_api` for OVH (it alone decides whether a
failed call provably created nothing), :mod:`.kube_api` for Kubernetes.
"""

from __future__ import annotations

import enum


class Retry(enum.Enum):
    """What can make a new attempt succeed, and so when to make it."""

    ON_CHANGE = "on-change"  # a change of the resource (or of the access policies that apply to it)
    SOON = "soon"  # a transient hiccup of OVH or Kubernetes
    CONFLICT = "conflict"  # something outside the resource must change (a foreign Secret, a stuck OVH user)
    LATER = "later"  # a human must act outside the cluster (OVH credentials, an OVH refusal)


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


# --- the resource itself ------------------------------------------------------------------------


class InvalidSpec(OperatorError):
    reason = "InvalidSpec"
    retry = Retry.ON_CHANGE


class AccessDenied(OperatorError):
    """The spec asks for more than the access policies of its namespace allow."""

    reason = "AccessDenied"
    retry = Retry.ON_CHANGE  # a change of the resource, of an access policy or of the namespace's labels


class AdoptionRefused(OperatorError):
    """``spec.userId`` names an OVH user the resource may not take over (absent, or someone else's)."""

    reason = "AdoptionRefused"
    retry = Retry.CONFLICT  # the other resource may go away; the user may appear


class SecretConflict(OperatorError):
    reason = "SecretConflict"
    retry = Retry.CONFLICT


class UserNotReady(OperatorError):
    """The OVH user is not usable yet (still ``creating``, or not visible yet after its creation)."""

    reason = "UserNotReady"


# --- OVH ----------------------------------------------------------------------------------------


class OVHError(OperatorError):
    """A failed OVH call.

    ``nothing_created`` is True only when OVH provably did not act on the request: it refused it
    (an answer in the 4xx range) or the request never left (no connection). A lost answer, a
    timeout or a 5xx leave it False: the call may have taken effect.
    """

    nothing_created = False

    def __init__(self, message: str, *, nothing_created: bool | None = None, reason: str | None = None,
                 retry: Retry | None = None) -> None:
        super().__init__(message, reason=reason, retry=retry)
        if nothing_created is not None:
            self.nothing_created = nothing_created


class OVHNotFound(OVHError):
    """OVH answered 404. Methods for which absence is normal catch it; elsewhere something vanished
    between two calls, which the next attempt sorts out."""

    reason = "OVHNotFound"
    nothing_created = True


class OVHCredentialsMissing(OVHError):
    reason = "OVHCredentialsMissing"
    retry = Retry.LATER
    nothing_created = True


class OVHCredentialsRejected(OVHError):
    reason = "OVHCredentialsRejected"
    retry = Retry.LATER
    nothing_created = True


class OVHClockRejected(OVHCredentialsRejected):
    """OVH refused the request's timestamp (``QUERY_TIME_OUT``): the local clock drifted from OVH's."""


class OVHProjectError(OVHError):
    """OVH_SERVICE_NAME (or an OVHProject's serviceName) does not name a project of the account, is needed
    and not set, or an OVHProject cannot be used as written."""

    reason = "OVHProjectError"
    retry = Retry.LATER
    nothing_created = True


class OVHProjectNotFound(OperatorError):
    """spec.projectRef names no OVHProject (the resource is looked at again when one appears)."""

    reason = "OVHProjectNotFound"
    retry = Retry.ON_CHANGE


class OVHProjectChanged(OperatorError):
    """The resource's OVH user lives in another OVH project than the one its OVHProject (or the operator's
    configuration) names now: the operator does not guess where the user is."""

    reason = "OVHProjectChanged"
    retry = Retry.LATER


class OVHRejected(OVHError):
    """OVH refused a request as invalid (4xx): retrying the same request will not help."""

    reason = "OVHRejected"
    retry = Retry.LATER
    nothing_created = True


class OVHConflict(OVHError):
    """OVH answered 409 (e.g. the user is not ready for that operation yet)."""

    reason = "OVHConflict"
    nothing_created = True


class OVHUnavailable(OVHError):
    """OVH kept failing (429, 5xx, network, garbage answers) after the client's retries."""

    reason = "OVHUnavailable"


# --- Kubernetes ---------------------------------------------------------------------------------


class KubernetesAPIError(OperatorError):
    reason = "KubernetesAPIError"

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class KubeNotFound(KubernetesAPIError):
    """The object does not exist (HTTP 404); each caller says what absence means."""


class KubeAlreadyExists(KubernetesAPIError):
    """The object to create exists already (HTTP 409 on create)."""


class KubeConflict(KubernetesAPIError):
    """The object changed since it was read (HTTP 409 on a write with a resourceVersion)."""


class ResourceGone(Exception):
    """The custom resource being reconciled no longer exists (or was replaced by a namesake)."""
