"""Several projects and OAuth2 through a real operator process, over HTTPS with the real python-ovh client:
the operator's own project reached with an OAuth2 service account whose tokens expire every second, and
a second project through an OVHProject with its own consumer key."""

from __future__ import annotations

import json

import pytest

from ovh_s3_operator.ovh_api import ACCESS_RULES
from ovh_s3_operator_sandbox.stack import OPERATOR_NAMESPACE, wait_for

from ..support import issued_secrets, live_users
from .conftest import World

pytestmark = pytest.mark.integration
APPLICATION_KEYS = ("OVH_APPLICATION_KEY", "OVH_APPLICATION_SECRET", "OVH_CONSUMER_KEY")


@pytest.mark.parametrize("world", [{"ovh_token_lifetime": 1.0}], indirect=True)
def test_oauth2_tokens_expire_and_renew_and_a_second_project_is_used(world: World) -> None:
    world.show_log_on_failure = False  # the log is scanned for secrets below: never print it
    sandbox = world.stack.ovh
    world.start_operator(sandbox.env(oauth2=True), drop=APPLICATION_KEYS, log_level="--debug")
    second = sandbox.add_project()
    keys = sandbox.add_consumer_key(ACCESS_RULES, second.service_name)
    world.put_secret("second-ovh", OPERATOR_NAMESPACE, {"OVH_APPLICATION_KEY": keys.application_key,
                                                       "OVH_APPLICATION_SECRET": keys.application_secret,
                                                       "OVH_CONSUMER_KEY": keys.consumer_key})
    world.set_ovh_project("second", second.service_name, "second-ovh", sandbox.url)
    wait_for(lambda: world.project_ready_for("second", "True", "CredentialsValid"), 30, what="the OVHProject")

    here = world.create("here", {"grants": [{"bucket": "b-1", "access": "read"}]})["metadata"]["uid"]
    there = world.create("there", {"projectRef": {"name": "second"}})["metadata"]["uid"]
    world.assert_consistent(["here"])
    [user] = live_users(second.users(), there)
    assert world.wait_ready("there")["status"]["userId"] == user["id"]
    assert [u["id"] for u in live_users(sandbox.project.users(), here)] == [user["id"]]  # ids per project

    # The token expires (OVH-side and in python-ovh alike): the next calls get a new one, nothing fails.
    granted = sandbox.tokens_granted()
    wait_for(lambda: sandbox.live_tokens() == 0, 30, what="the token to expire")
    world.patch_spec("here", {"grants": [{"bucket": "b-2", "access": "read"}]})
    world.wait_ready("here", generation=2)
    assert sandbox.tokens_granted() > granted
    assert "b-2" in live_users(sandbox.project.users(), here)[0]["policy"]
    statuses = json.dumps([world.get(name) for name in ("here", "there")] + [world.ovh_project("second")])
    issued = issued_secrets([*sandbox.project.users(), *second.users()])

    world.delete("here")
    world.delete("there")
    world.assert_consistent([], gone=["here", "there"])
    assert live_users(second.users()) == []

    events = [e for e in world.core.list_event_for_all_namespaces().items if e.type == "Warning"]
    assert [(e.reason, e.message) for e in events] == []  # no failure on the way
    log = world.operator_log()
    assert "DEBUG" in log and "/auth/oauth2/token" in log
    secrets = [sandbox.oauth2.client_secret, keys.consumer_key, keys.application_secret,
               *sandbox.granted_tokens(), *issued]
    assert len(secrets) > 6 and '"here"' in statuses and '"there"' in statuses
    # Report where, never what: the assertion must not print the secrets either.
    places = {"operator log": log, "statuses": statuses}
    assert sorted({place for place, text in places.items() for secret in secrets if secret in text}) == []
