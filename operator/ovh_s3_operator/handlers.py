"""kopf wiring: every decorator of the operator lives here and delegates to :mod:`.reconcile`."""

from __future__ import annotations

import logging
import urllib.parse
from typing import Any

import kopf

from . import periodic
from .config import Settings
from .model import FINALIZER, GROUP, PLURAL, VERSION, Resource
from .reconcile import finalize
from .runtime import Runtime
from .secrets import MANAGED_BY, MANAGED_BY_LABEL

CR = (GROUP, VERSION, PLURAL)


def configure_kopf(settings: kopf.OperatorSettings) -> None:
    settings.persistence.finalizer = FINALIZER
    # Annotations only: the CRD's structural schema has no room for kopf's status fields.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration")
    settings.peering.standalone = True
    settings.posting.level = logging.INFO
    # Only the operator's own Secrets are watched (server-side selector).
    settings.watching.label_selectors["v1", "secrets"] = f"{MANAGED_BY_LABEL}={MANAGED_BY}"


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, logger: kopf.Logger,
                  **_: Any) -> None:
    config = Settings()
    configure_kopf(settings)
    runtime = Runtime.start(config)
    memo.runtime = runtime
    problem = runtime.ovh.configuration_error
    if problem is not None:
        logger.error("%s. Every resource will report this until the operator restarts with credentials.",
                     problem.message)
    else:
        endpoint = urllib.parse.urlsplit(config.ovh_endpoint)
        shown = endpoint._replace(netloc=endpoint.hostname or "").geturl() if endpoint.password else endpoint.geturl()
        logger.info("Using OVH API %s, project %s", shown, config.ovh_service_name or "(the only one)")


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    memo.runtime.close()


@kopf.on.resume(*CR)
@kopf.on.create(*CR)
@kopf.on.update(*CR, field="spec")
async def converge(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    await periodic.handled_by_kopf(memo.runtime, Resource.from_body(body), logger)


@kopf.on.delete(*CR)
async def delete_ovh_user(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    await finalize(memo.runtime, Resource.from_body(body), logger)


@kopf.daemon(*CR, cancellation_timeout=10)
async def periodic_check(stopped: kopf.DaemonStopped, body: kopf.Body, memo: kopf.Memo,
                         logger: kopf.Logger, **_: Any) -> None:
    await periodic.run(memo.runtime, body, stopped, logger)


@kopf.on.event("v1", "secrets", labels={MANAGED_BY_LABEL: MANAGED_BY})
async def secret_changed(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """A managed Secret was changed or deleted by someone else: restore it now."""
    periodic.secret_event(memo.runtime, type, body)
