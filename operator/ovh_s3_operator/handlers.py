"""kopf wiring: every decorator of the operator lives here and delegates to :mod:`.reconcile`."""

from __future__ import annotations

import logging
import random
from typing import Any

import kopf

from .config import Settings
from .model import FINALIZER, GROUP, KIND, PLURAL, VERSION, Resource
from .reconcile import Runtime, finalize, reconcile
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
    memo.kopf_settings = settings
    problem = runtime.ovh.configuration_error
    if problem is not None:
        logger.error("%s. Every resource will report this until the operator restarts with credentials.",
                     problem.message)
    else:
        logger.info("Using OVH API %s, project %s", config.ovh_endpoint, config.ovh_service_name or "(auto)")


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    memo.runtime.close()


@kopf.on.resume(*CR)
@kopf.on.create(*CR)
@kopf.on.update(*CR, field="spec")
async def converge(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    await reconcile(memo.runtime, Resource.from_body(body), logger, full=False)


@kopf.on.delete(*CR)
async def delete_ovh_user(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    await finalize(memo.runtime, Resource.from_body(body), logger)


@kopf.daemon(*CR, cancellation_timeout=10)
async def drift_check(stopped: kopf.DaemonStopped, body: kopf.Body, memo: kopf.Memo,
                      logger: kopf.Logger, **_: Any) -> None:
    """Verify against OVH every drift interval (jittered, so restarts do not align the checks)."""
    runtime: Runtime = memo.runtime
    interval = runtime.settings.drift_interval
    if interval <= 0:
        return
    await stopped.wait(interval * random.uniform(0.1, 1.0))
    while not stopped:
        try:
            await reconcile(runtime, Resource.from_body(body), logger, full=True)
        except (kopf.TemporaryError, kopf.PermanentError) as error:
            logger.warning("Drift check failed: %s", error)
        await stopped.wait(interval * random.uniform(0.9, 1.1))


@kopf.index(*CR)
def resources_by_name(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> dict[tuple[str | None, str], Any]:
    return {(namespace, name): body}


@kopf.on.event("v1", "secrets", labels={MANAGED_BY_LABEL: MANAGED_BY})
async def secret_changed(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    """Restore a managed Secret as soon as it is edited or deleted by hand."""
    resources: kopf.Index[tuple[str | None, str], Any] = kwargs["resources_by_name"]  # indexes come by name
    namespace = body.get("metadata", {}).get("namespace")
    for ref in body.get("metadata", {}).get("ownerReferences") or ():
        if ref.get("kind") != KIND:
            continue
        for owner in resources.get((namespace, ref.get("name")), ()):
            if owner.get("metadata", {}).get("uid") == ref.get("uid"):
                logger = kopf.ObjectLogger(body=owner, settings=memo.kopf_settings)
                try:
                    await reconcile(memo.runtime, Resource.from_body(owner), logger, full=False)
                except (kopf.TemporaryError, kopf.PermanentError) as error:
                    logger.warning("Could not restore Secret for %s/%s: %s", namespace, ref.get("name"), error)
