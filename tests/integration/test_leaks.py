"""No key material anywhere: a full lifecycle at the most verbose log level, then a scan of the operator's
output, the Kubernetes events, every status and condition for every secret that existed."""

from __future__ import annotations

import json

import pytest

from ovh_s3_operator_sandbox.stack import wait_for

from ..support import issued_secrets
from .conftest import World

pytestmark = pytest.mark.integration


def test_no_secret_reaches_logs_events_or_status(world: World) -> None:
    world.show_log_on_failure = False  # if something leaked, the log must not be printed either
    world.start_operator({"OVH_S3_OPERATOR_DRIFT_INTERVAL": "1"}, log_level="--debug")
    secrets: set[str] = {world.stack.ovh.credentials.application_secret, world.stack.ovh.credentials.consumer_key}
    statuses: list[str] = []

    def snapshot() -> None:
        for name in ("leak-a", "leak-b", "leak-c"):
            obj = world.get(name)
            if obj is not None:
                statuses.append(json.dumps(obj))
        secrets.update(issued_secrets(world.stack.ovh.project.users()))

    world.create("leak-a", {"grants": [{"bucket": "leak-bucket", "prefix": "p/", "access": "readwrite"}]})
    world.create("leak-b", {"policy": {"Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::leak-bucket/*"]}]}})
    # A template that passes validation (placeholder credentials) and fails on the real secret, where
    # Jinja's own message would quote it.
    config = "[default]\nkey = {{ secretAccessKey }}\n"
    world.create("leak-c", {"grants": [{"bucket": "leak-bucket", "access": "read"}], "secret": {
        "keys": {"secretAccessKey": "S3_SECRET"},
        "template": {"config": config, "z": "{{ {'0' * 32: 1}[secretAccessKey] }}"}}})
    world.wait_condition("leak-c", "False", "InvalidSpec")
    snapshot()
    world.patch_spec("leak-c", {"secret": {"template": {"z": None}}})
    world.assert_consistent(["leak-a", "leak-b", "leak-c"])
    snapshot()

    # Restore from a deleted Secret (the secret is fetched again from OVH), then a new key after drift.
    world.core.delete_namespaced_secret("leak-a-s3", world.namespace)
    wait_for(lambda: world.secret("leak-a-s3"), 30, what="the Secret to be restored")
    uid_b = world.wait_ready("leak-b")["metadata"]["uid"]
    [user] = world.ovh_users(uid_b)
    old_access = user["credentials"][0]["access"]
    world.stack.ovh.project.delete_credential(user["id"], old_access)
    wait_for(lambda: [c for c in world.ovh_users(uid_b)[0]["credentials"] if c["access"] != old_access], 30,
             what="a new key")
    world.assert_consistent(["leak-a", "leak-b", "leak-c"])
    snapshot()
    # A failure with OVH in the way, so that error paths are logged too.
    world.stack.ovh.add_fault(method="GET", path=r"/s3Credentials$", status=503, times=3)
    world.patch_spec("leak-a", {"grants": [{"bucket": "leak-bucket", "access": "read"}]})
    world.wait_ready("leak-a", generation=2)
    snapshot()

    for name in ("leak-a", "leak-b", "leak-c"):
        world.delete(name)
    world.assert_consistent([], gone=["leak-a", "leak-b", "leak-c"])

    events = [json.dumps(world.core.api_client.sanitize_for_serialization(e))
              for e in world.core.list_event_for_all_namespaces().items]
    log = world.operator_log()
    assert "DEBUG" in log and len(events) > 5 and statuses
    assert len(secrets) >= 5  # app secret, consumer key and at least three S3 secrets
    # Report where, never what: the assertion must not print the secrets either.
    places = {"operator log": [log], "events": events, "statuses": statuses}
    leaks = sorted({place for place, texts in places.items() for secret in secrets for text in texts if secret in text})
    assert leaks == []
