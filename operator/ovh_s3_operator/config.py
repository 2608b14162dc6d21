"""Operator settings, read once from the environment at startup.

OVH credentials use python-ovh's usual names (``OVH_*``); the operator's own knobs are prefixed
``OVH_S3_OPERATOR_``. The README's configuration reference lists every variable.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_REGIONS = (
    "gra", "sbg", "rbx", "bhs", "de", "uk", "waw", "ca-east-tor", "eu-west-par", "eu-south-mil",
    "ap-southeast-sgp", "ap-southeast-syd", "ap-south-mum", "us-east-va", "us-west-or",
)


def _ovh(name: str) -> AliasChoices:
    return AliasChoices(f"OVH_{name}")


class Settings(BaseSettings):
    """Everything the operator reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="OVH_S3_OPERATOR_", extra="ignore", frozen=True,
                                      populate_by_name=True)

    # --- OVH API access (python-ovh names) ---------------------------------------------------
    ovh_endpoint: str = Field("ovh-eu", validation_alias=_ovh("ENDPOINT"))
    ovh_application_key: str | None = Field(None, validation_alias=_ovh("APPLICATION_KEY"))
    ovh_application_secret: SecretStr | None = Field(None, validation_alias=_ovh("APPLICATION_SECRET"))
    ovh_consumer_key: SecretStr | None = Field(None, validation_alias=_ovh("CONSUMER_KEY"))
    ovh_client_id: str | None = Field(None, validation_alias=_ovh("CLIENT_ID"))
    ovh_client_secret: SecretStr | None = Field(None, validation_alias=_ovh("CLIENT_SECRET"))
    ovh_service_name: str | None = Field(None, validation_alias=_ovh("SERVICE_NAME"))

    # --- OVH client behaviour ------------------------------------------------------------------
    ovh_requests_per_second: float = Field(0.9, gt=0)
    """Sustained client-side rate of OVH calls, shared by all resources: 54 a minute, under the 60 a
    minute per consumer key that OVH calls fair use (python-ovh issue #81)."""
    ovh_burst: int = Field(50, ge=1)
    """Calls that may go at once before the sustained rate applies (the token bucket's size): about a
    dozen new resources after a quiet minute are not slowed at all."""
    ovh_max_attempts: int = Field(5, ge=1)
    """Attempts per OVH call for retryable failures (429, 5xx, network) before giving up."""
    ovh_request_timeout: float = Field(30.0, gt=0)
    """Seconds to wait for one OVH HTTP answer."""
    ovh_backoff_base: float = Field(0.5, gt=0)
    ovh_backoff_max: float = Field(30.0, gt=0)
    workers: int = Field(8, ge=1)
    """Threads for blocking calls, for each of the two APIs."""
    max_concurrent_reconciles: int = Field(32, ge=1)
    """Resources reconciled at the same time; the others wait their turn, namespace by namespace."""

    # --- reconciliation ------------------------------------------------------------------------
    user_ready_timeout: float = Field(600.0, gt=0)
    """How long a new OVH user may stay in 'creating' before the resource reports it."""
    user_poll_interval: float = Field(2.0, gt=0)
    """Seconds between looks at an OVH user that should be ready (or gone) by now."""
    ovh_consistency_delay: float = Field(30.0, ge=0)
    """How long a just-created OVH user may be invisible to reads before the operator concludes it is gone."""
    retry_delay: float = Field(10.0, gt=0)
    """Delay before retrying after a transient failure (OVH down, Kubernetes API errors)."""
    conflict_retry_delay: float = Field(60.0, gt=0)
    """Delay before retrying when something outside the resource blocks it (e.g. a foreign Secret)."""
    permanent_retry_delay: float = Field(900.0, gt=0)
    """Delay before retrying after a failure that needs a human (credentials rejected, OVH 400)."""
    drift_interval: float = Field(1800.0, ge=0)
    """Seconds between drift checks against OVH per resource (0 disables them)."""
    rotation_request_interval: float = Field(60.0, ge=0)
    """Least seconds between two key rotations asked for with the annotation (bounds what a tenant
    can spend of the OVH rate budget by re-annotating)."""
    cluster_id: str | None = Field(None, pattern=r"^[A-Za-z0-9-]{1,64}$")
    """Marks the OVH users of this cluster; default: the uid of the kube-system namespace."""

    # --- operations -------------------------------------------------------------------------------
    metrics_port: int = Field(9090, ge=0, le=65535)
    """Port of the Prometheus metrics (/metrics); 0 serves none."""
    leader_election: bool = False
    """Take a Lease before acting, so that several replicas can run: one acts, the others stand by."""
    operator_namespace: str = Field("ovh-s3-operator", validation_alias=AliasChoices(
        "OVH_S3_OPERATOR_NAMESPACE", "POD_NAMESPACE"), pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    """The operator's own namespace (default: the pod's, from POD_NAMESPACE): the Lease, the register of
    adopted and retained OVH users and the Secrets of OVHProjects live there (and only there)."""
    leader_election_namespace: str | None = None
    """Namespace of the Lease (default: the operator's namespace)."""
    leader_lease_duration: float = Field(15.0, ge=1)
    """Seconds without renewal after which a standby takes the Lease over."""

    # --- multi-tenancy ---------------------------------------------------------------------------
    default_access: Literal["deny", "allow"] = "deny"
    """What a namespace no OVHObjectStorageAccessPolicy selects may ask for: nothing, or any bucket
    (with the objectstore_operator role only)."""
    access_resync_interval: float = Field(300.0, gt=0)
    """Seconds between full re-reads of the access policies and namespaces (watch events keep them
    current in between)."""
    orphan_sweep: bool = True
    """Delete OVH users of this cluster whose resource no longer exists (e.g. a finalizer removed by hand)."""
    orphan_sweep_interval: float = Field(3600.0, gt=0)
    """Seconds between orphan sweeps, jittered."""
    orphan_grace: float = Field(600.0, ge=0)
    """How old an OVH user must be before the sweep may call it an orphan (never less than the creation window)."""
    default_region: str = "gra"
    regions: Annotated[tuple[str, ...], NoDecode] = DEFAULT_REGIONS

    # --- several OVH projects (OVHProject) --------------------------------------------------------
    project_resync_interval: float = Field(60.0, gt=0)
    """Seconds between re-reads of the OVHProjects and their Secrets: a rotation of credentials is picked
    up within this time (or at the first call OVH rejects)."""
    project_idle_timeout: float = Field(600.0, ge=0)
    """Seconds an OVHProject's client is kept once no resource uses the project."""

    @field_validator("regions", mode="before")
    @classmethod
    def _split_regions(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @property
    def creation_window(self) -> float:
        """How long after a user creation request OVH may still not show the user."""
        return self.ovh_consistency_delay + self.ovh_request_timeout
