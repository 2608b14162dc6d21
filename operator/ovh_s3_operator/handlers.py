"""kopf wiring: every kopf decorator of the operator. kopf watches; :mod:`.controller` does the rest.

Each handler only hands the event to the controller's work queue: kopf adds no finalizer, keeps no
progress annotations and retries nothing here (see :mod:`.controller` for why).
"""

from __future__ import annotations

from typing import Any

import kopf

from .access_policy import POLICY_PLURAL
from .app import App
from .config import Settings
from .model import GROUP, MANAGED_BY_LABEL, PLURAL, PROJECT_PLURAL, VERSION
from .secret_writer import MANAGED_BY


def configure_kopf(settings: kopf.OperatorSettings) -> None:
    settings.peering.standalone = True
    settings.posting.enabled = False  # the operator posts its own events (kube_api.EventRecorder)
    # Only the operator's own Secrets are watched (server-side selector).
    settings.watching.label_selectors["v1", "secrets"] = f"{MANAGED_BY_LABEL}={MANAGED_BY}"


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    configure_kopf(settings)
    memo.app = await App.start(Settings())


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    await memo.app.close()


@kopf.on.event(GROUP, VERSION, PLURAL)
async def resource_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.app.controller.resource_event(type, body)


@kopf.on.event(GROUP, VERSION, POLICY_PLURAL)
async def access_policy_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.app.controller.access_event("policy", type, body)


@kopf.on.event(GROUP, VERSION, PROJECT_PLURAL)
async def project_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.app.projects.event(type, body)


@kopf.on.event("v1", "namespaces")
async def namespace_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.app.controller.access_event("namespace", type, body)


@kopf.on.event("v1", "secrets", labels={MANAGED_BY_LABEL: MANAGED_BY})
async def secret_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """A managed Secret changed or was deleted: the controller restores it if someone else did it."""
    memo.app.controller.secret_event(type, body)

