"""Bad input and failures of OVH and Kubernetes: a Ready=False condition that says what is wrong and
what to do, nothing half-done in OVH, retries that are safe and bounded, and recovery."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from ovh_s3_operator.manifests import crd_documents
from ovh_s3_operator_sandbox.harness import until
from ovh_s3_operator_sandbox.kube.server import KubeEmulator
from ovh_s3_operator_sandbox.ovh.server import DEFAULT_ROLES, OVHSandbox

from .conftest import Operator

GRANTS = {"grants": [{"bucket": "fault-bucket", "access": "read"}]}


def assert_no_ovh_secrets_in(op: Operator, text: str) -> None:
    credentials = op.ovh.credentials
    for value in (credentials.application_secret, credentials.consumer_key):
        assert value not in text


async def fail_then_delete(op: Operator, name: str, spec: dict[str, Any], reason: str, message: str) -> dict[str, Any]:
    """Create, wait for Ready=False with reason/message, check OVH is untouched, delete, check cleanup."""
    op.create(name, spec)
    obj = await op.wait_condition(name, "False", reason)
    condition = op.ready(obj)
    assert condition is not None
    assert message in condition["message"], condition["message"]
    assert_no_ovh_secrets_in(op, str(obj))
    assert op.ovh_users() == []
    op.delete(name)
    await op.wait_gone(name)
    assert op.ovh_users() == []
    return condition


# --- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("policy", "message"), [
    ({"Statement": [{"Effect": "Allow", "Action": ["s3:Foo"], "Resource": ["arn:aws:s3:::b1x"]}]},
     "spec.policy.Statement[0].Action: unsupported S3 action 's3:Foo'"),
    ({"Statement": [{"Effect": "Allow", "Action": 42, "Resource": "arn:aws:s3:::b1x"}]},
     "spec.policy.Statement[0].Action must be a non-empty string or list of strings"),
    ({"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "bucket/*"}]},
     "must look like arn:aws:s3:::bucket"),
    ({"Statement": [{"Sid": "Grant0", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}]},
     "duplicate Sid Grant0"),
], ids=["unknown-action", "malformed", "bad-resource", "sid-clash"])
async def test_invalid_policy(policy: dict[str, Any], message: str) -> None:
    """The operator's own check, for what an API server without the CRD's schema would let through."""
    async with Operator(kube=_schemaless()) as op:
        await fail_then_delete(op, "bad-policy", {"policy": policy, **GRANTS}, "InvalidSpec", message)


@pytest.mark.parametrize(("spec", "field"), [
    ({"roles": ["superuser"]}, "spec.roles[0]"),
    ({"policy": {"Statement": {"Effect": "Allow"}}}, "spec.policy.Statement"),
    ({"grants": [{"bucket": "Not_A_Bucket", "access": "read"}]}, "spec.grants[0].bucket"),
    ({"grants": [{"bucket": "fine-bucket", "access": "write"}]}, "spec.grants[0].access"),
    ({"secret": {"keys": {"accessKeyId": "S3 KEY"}}}, "spec.secret.keys.accessKeyId"),
    ({"secret": {"format": "Cosi"}}, "spec.secret.format"),
    ({"secret": {"template": {"../x": "y"}}}, "each key must be a valid Secret key"),
    ({"secret": {"labels": {"s3.ovh-operator.dev/owner": "me"}}}, "reserved for the operator"),
    ({"secret": {"annotations": {"app.kubernetes.io/managed-by": "me"}}}, "reserved for the operator"),
    ({"secret": {"labels": {"team": "a b"}}}, "spec.secret.labels.team"),
], ids=["role", "statement-not-a-list", "bucket-name", "access-level", "secret-key-name", "secret-format",
        "template-key", "reserved-label", "reserved-annotation", "label-value"])
async def test_the_crd_schema_refuses_what_it_can(op: Operator, spec: dict[str, Any], field: str) -> None:
    with pytest.raises(ApiException) as error:
        op.create("refused", spec)
    assert error.value.status == 422
    assert field in str(error.value.body)


async def test_the_operator_checks_what_an_api_server_without_the_schema_lets_through() -> None:
    async with Operator(kube=_schemaless()) as op:
        await fail_then_delete(op, "no-schema", {"grants": [{"bucket": "Bad_Bucket", "access": "read"}]},
                               "InvalidSpec", "spec.grants[0].bucket: Value error, invalid bucket name 'Bad_Bucket'")


@pytest.mark.parametrize(("secret", "message"), [
    ({"keys": {"accessKeyId": "KEY", "region": "KEY"}},
     "spec.secret.keys.region: the key KEY is also spec.secret.keys.accessKeyId; give each value its own key"),
    ({"template": {"AWS_REGION": "{{ region }}"}},
     "spec.secret.template.AWS_REGION: the key AWS_REGION is already spec.secret.keys.region"),
    ({"format": "COSI", "keys": {"endpoint": "S3_URL"}}, "spec.secret.keys.endpoint: format COSI reads"),
    ({"template": {"cfg": "[x]\n{% if region %}\n"}},
     "spec.secret.template.cfg: line 2: Unexpected end of template. Jinja was looking for the following tags: 'elif' "
     "or 'else' or 'endif'. The innermost block that needs to be closed is 'if'; fix the template"),
    ({"template": {"cfg": "[x]\nkey = {{ secret_key }}"}},
     "spec.secret.template.cfg: line 2: unknown variable 'secret_key'; the variables are accessKeyId"),
    ({"template": {"cfg": "{{ buckets[3] }}"}}, "spec.secret.template.cfg: line 1: uses something undefined"),
], ids=["keys-collide", "template-takes-a-key", "cosi-renamed", "syntax", "unknown-variable", "render-error"])
async def test_a_secret_that_cannot_be_written_as_asked(op: Operator, secret: dict[str, Any], message: str) -> None:
    await fail_then_delete(op, "bad-shape", {**GRANTS, "secret": secret}, "InvalidSpec", message)


async def test_the_operator_checks_the_secret_shape_an_api_server_without_the_schema_lets_through() -> None:
    async with Operator(kube=_schemaless()) as op:
        await fail_then_delete(op, "reserved", {**GRANTS, "secret": {"labels": {"app.kubernetes.io/managed-by": "x"}}},
                               "InvalidSpec", "the label app.kubernetes.io/managed-by is reserved for the operator")
        await fail_then_delete(op, "bad-key", {**GRANTS, "secret": {"template": {"a b": ""}}}, "InvalidSpec",
                               "spec.secret.template: Value error, invalid key 'a b'")


def _schemaless() -> KubeEmulator:
    kube = KubeEmulator(validate=False)
    for crd in crd_documents():
        kube.install_crd(crd)
    return kube


async def test_unknown_region(op: Operator) -> None:
    await fail_then_delete(op, "far-away", {"region": "mars"}, "InvalidSpec",
                           "spec.region: unknown region 'mars'; use one of gra, sbg")


async def test_a_secret_name_too_long_for_kubernetes(op: Operator) -> None:
    await fail_then_delete(op, "x" * 252, {}, "InvalidSpec", "set a shorter spec.secret.name")


async def test_role_the_project_does_not_offer() -> None:
    ovh = OVHSandbox(activation=0.05, deletion=0.02, roles=[r for r in DEFAULT_ROLES if r != "ai_training_read"])
    async with Operator(ovh=ovh) as op:
        await fail_then_delete(op, "bad-role", {"roles": ["ai_training_read"]}, "InvalidSpec",
                               "spec.roles: the OVH project does not offer ai_training_read")


async def test_fixing_an_invalid_spec_recovers(op: Operator) -> None:
    op.create("fix-me", {**GRANTS, "region": "venus"})
    await op.wait_condition("fix-me", "False", "InvalidSpec")
    assert op.app is not None and op.app.controller.due(("default", "fix-me")) is None  # waits for a change
    op.patch("fix-me", {"spec": {"region": "gra"}})
    await op.assert_consistent(["fix-me"])


async def test_secret_name_owned_by_something_else_is_never_touched(op: Operator) -> None:
    op.core.create_namespaced_secret("default", {"metadata": {"name": "taken"}, "stringData": {"password": "keep"}})
    before = op.secret("taken")
    mark = len(op.kube.requests)
    await fail_then_delete(op, "wants-taken", {"secret": {"name": "taken"}}, "SecretConflict",
                           "Secret taken already exists in namespace default and is not owned by this resource")
    # Ownership was decided on metadata: the foreign Secret was never read whole.
    reads = {r.view for r in list(op.kube.requests)[mark:] if r.method == "GET" and r.path.endswith("/secrets/taken")}
    assert reads == {"PartialObjectMetadata"}
    assert op.secret("taken") == before


async def test_two_resources_naming_the_same_secret(op: Operator) -> None:
    first = op.create("first", {"secret": {"name": "shared"}})
    await op.wait_ready("first")
    before = op.secret("shared")
    op.create("second", {"secret": {"name": "shared"}})
    await op.wait_condition("second", "False", "SecretConflict")
    assert op.secret("shared") == before
    assert [r["uid"] for r in before["metadata"]["ownerReferences"]] == [first["metadata"]["uid"]]  # type: ignore[index]
    assert len(op.ovh_users()) == 1  # the second resource created nothing in OVH
    op.delete("first")
    await op.wait_gone("first")
    await op.assert_consistent(["second"])  # it takes the name over once the first Secret is gone


@pytest.mark.parametrize("op", [{"ovh_consumer_key": None}], indirect=True)
async def test_missing_ovh_credentials(op: Operator) -> None:
    condition = await fail_then_delete(op, "no-creds", {}, "OVHCredentialsMissing", "set OVH_CONSUMER_KEY")
    assert "operator" in condition["message"]
    assert op.ovh.calls() == []


@pytest.mark.parametrize("op", [{"ovh_application_secret": "not-the-secret"}], indirect=True)
async def test_rejected_ovh_credentials(op: Operator) -> None:
    await fail_then_delete(op, "rejected", {}, "OVHCredentialsRejected", "check OVH_APPLICATION_SECRET")


async def test_deleted_while_still_creating(op: Operator) -> None:
    op.ovh.project.activation = 0.5
    uid = op.create("hasty", {})["metadata"]["uid"]
    await until(lambda: op.ovh_users(uid), what="the OVH user to exist")
    assert op.ovh_users(uid)[0]["status"] == "creating"
    op.delete("hasty")
    await op.wait_gone("hasty")
    assert op.ovh_users() == []


async def test_spec_changed_while_creating(op: Operator) -> None:
    op.ovh.project.activation = 0.3
    uid = op.create("changing", {"grants": [{"bucket": "old-bucket", "access": "read"}]})["metadata"]["uid"]
    await until(lambda: op.ovh_users(uid), what="the OVH user to exist")
    op.patch("changing", {"spec": {"grants": [{"bucket": "new-bucket", "access": "readwrite"}]}})
    await op.assert_consistent(["changing"])
    [user] = op.ovh_users(uid)
    assert "new-bucket" in user["policy"] and "old-bucket" not in user["policy"]


# --- OVH faults ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", [
    {"status": 500}, {"status": 502}, {"status": 503}, {"reset": True},
    {"status": 502, "body": "<html>Bad Gateway</html>"}, {"delay": 2.0},
], ids=["500", "502", "503", "connection-reset", "not-json", "timeout"])
async def test_transient_faults_are_retried_inside_one_reconcile(op: Operator, fault: dict[str, Any]) -> None:
    op.create("seed", {})
    await op.wait_ready("seed")  # so that the faulted call is the one of the new resource
    op.ovh.add_fault(method="GET", path=r"/s3Credentials$", times=2, **fault)
    op.create("flaky", GRANTS)
    op.patch("seed", {"spec": {"description": "read the keys again"}})
    await op.wait_ready("seed")
    assert len(op.calls("GET", r"/s3Credentials$")) == 3
    assert "OVHUnavailable" not in await op.event_reasons()  # the client's own retries absorbed it
    await op.assert_consistent(["seed", "flaky"])


@pytest.mark.parametrize("op", [{"ovh_max_attempts": 3}], indirect=True)
async def test_persistent_outage_is_reported_without_a_hot_loop_and_recovers(op: Operator) -> None:
    outage = op.ovh.add_fault(method="GET", path=r"/role$", status=503, times=-1)
    op.create("outage", GRANTS)
    obj = await op.wait_condition("outage", "False", "OVHUnavailable")
    assert "HTTP 503" in op.ready(obj)["message"]  # type: ignore[index]
    calls = len(op.ovh.calls())
    await asyncio.sleep(0.5)
    retries = (len(op.ovh.calls()) - calls) / 3
    assert 0 < retries <= math.ceil(0.5 / (0.05 * 0.9)) + 1
    op.ovh.remove_fault(outage)
    await op.assert_consistent(["outage"])


@pytest.mark.parametrize("op", [{"permanent_retry_delay": 600}], indirect=True)
async def test_rejected_credentials_are_not_retried_in_a_storm(op: Operator) -> None:
    op.ovh.revoke_consumer_key()
    op.create("denied", GRANTS)
    obj = await op.wait_condition("denied", "False", "OVHCredentialsRejected")
    assert "OVH_CONSUMER_KEY" in op.ready(obj)["message"]  # type: ignore[index]
    assert op.app is not None
    controller = op.app.controller
    # (Events the failed reconcile itself caused may bring one more look first; then it waits.)
    await until(lambda: (due := controller.due(("default", "denied"))) is not None and due > 500,
                what="the next attempt to wait for PERMANENT_RETRY_DELAY")
    refused = len(op.ovh.calls())
    op.patch("denied", {"spec": {"description": "try again"}})
    await until(lambda: len(op.ovh.calls()) > refused, what="a retry on the spec change")
    assert op.ovh_users() == []


@pytest.mark.parametrize("op", [{"permanent_retry_delay": 600}], indirect=True)
async def test_ovh_refusal_waits_for_a_spec_change(op: Operator) -> None:
    refusal = op.ovh.add_fault(method="POST", path=r"/policy$", status=400, times=-1)
    op.create("refused", GRANTS)
    obj = await op.wait_condition("refused", "False", "OVHRejected")
    assert "OVH refused POST" in op.ready(obj)["message"]  # type: ignore[index]
    assert len(op.calls("POST", r"/policy$")) == 1
    op.ovh.remove_fault(refusal)
    op.patch("refused", {"spec": {"grants": [{"bucket": "fault-bucket", "access": "readwrite"}]}})
    await op.assert_consistent(["refused"])


@pytest.mark.parametrize("op", [{"user_ready_timeout": 0.3}], indirect=True)
async def test_user_stuck_in_creating(op: Operator) -> None:
    op.ovh.project.activation = math.inf
    op.create("stuck", GRANTS)
    obj = await op.wait_condition("stuck", "False", "UserStuck")
    assert "check the project in the OVH console" in op.ready(obj)["message"]  # type: ignore[index]
    op.ovh.project.activation = 0
    await op.assert_consistent(["stuck"])


async def test_user_briefly_unknown_after_creation(op: Operator) -> None:
    op.ovh.project.visibility_delay = 0.2
    op.create("eventual", GRANTS)
    await op.assert_consistent(["eventual"])
    assert len(op.calls("POST", r"/user$")) == 1


@pytest.mark.parametrize("visibility_delay", [0.0, 0.2], ids=["visible", "eventually-visible"])
@pytest.mark.parametrize("fault", [{"status": 502, "after": True}, {"reset": True, "after": True}],
                         ids=["502", "connection-reset"])
async def test_lost_answer_to_user_creation_adopts_instead_of_duplicating(
        op: Operator, fault: dict[str, Any], visibility_delay: float) -> None:
    op.ovh.project.visibility_delay = visibility_delay
    op.ovh.add_fault(method="POST", path=r"/user$", **fault)
    op.create("lost", GRANTS)
    await op.assert_consistent(["lost"])
    assert len(op.calls("POST", r"/user$")) == 1
    await op.wait_events("UserAdopted")


async def test_lost_answer_to_key_creation_leaves_no_key_behind(op: Operator) -> None:
    op.ovh.add_fault(method="POST", path=r"/s3Credentials$", status=502, after=True)
    op.create("lost-key", GRANTS)
    await op.assert_consistent(["lost-key"])
    assert len(op.calls("POST", r"/s3Credentials$")) == 1


@pytest.mark.parametrize("op", [{"permanent_retry_delay": 600}], indirect=True)
async def test_a_refused_creation_clears_the_creation_record(op: Operator) -> None:
    op.ovh.add_fault(method="POST", path=r"/user$", status=400, times=-1)
    op.create("refused", {})
    obj = await op.wait_condition("refused", "False", "OVHRejected")
    assert "userRequestedAt" not in obj["status"]  # OVH refused: nothing to look for
    op.delete("refused")
    await op.wait_gone("refused")
    assert not op.calls("GET", r"/user$")  # deleting it needed no listing either


@pytest.mark.parametrize("body", [None, "<html>429 Too Many Requests</html>"], ids=["json", "html"])
async def test_retry_after_is_honoured_by_every_call(op: Operator, body: str | None) -> None:
    op.ovh.add_fault(method="GET", path=r"/role$", status=429, retry_after=0.3, body=body)
    op.create("limited", GRANTS)
    await op.wait_ready("limited")
    first, second = op.calls("GET", r"/role$")[:2]
    assert first.status == 429
    assert second.at - first.at >= 0.3
    assert op.app is not None and op.app.ovh.limiter.throttled_count == 1


async def test_a_429_on_user_creation_is_retried_safely(op: Operator) -> None:
    op.ovh.add_fault(method="POST", path=r"/user$", status=429, body="<html>slow down</html>")
    op.create("limited", {})
    await op.assert_consistent(["limited"])
    assert [c.status for c in op.calls("POST", r"/user$")] == [429, 200]


@pytest.mark.parametrize("op", [{"permanent_retry_delay": 600}], indirect=True)
async def test_a_user_whose_description_lost_the_marker_is_deleted_at_once(op: Operator) -> None:
    op.ovh.project.description_limit = 10
    op.create("truncated", {})
    obj = await op.wait_condition("truncated", "False", "OVHRejected")
    assert "without the operator's marker" in op.ready(obj)["message"]  # type: ignore[index]
    await until(lambda: not op.ovh_users(), what="the unmarked user to be deleted")
    assert "userId" not in obj["status"]


async def test_ovh_refusing_to_delete_a_busy_user_is_waited_out(op: Operator) -> None:
    op.ovh.project.refuse_busy_delete = True
    op.ovh.project.activation = 0.3
    uid = op.create("busy", {})["metadata"]["uid"]
    await until(lambda: op.ovh_users(uid), what="the OVH user to exist")
    op.delete("busy")
    await op.wait_gone("busy")
    assert next(c.status for c in op.calls("DELETE", r"/user/\d+$")) == 409
    assert op.ovh_users() == []


async def test_a_drifting_clock_is_read_again(op: Operator) -> None:
    op.create("first", {})
    await op.wait_ready("first")
    op.ovh.clock_offset = 600  # OVH's clock and the operator's now disagree by 10 minutes
    op.create("second", {})
    await op.assert_consistent(["first", "second"])
    assert len(op.calls("GET", r"/auth/time$")) == 2
    assert any(c.status == 400 for c in op.ovh.calls())  # the refused call, answered QUERY_TIME_OUT


async def test_the_project_is_full(op: Operator) -> None:
    op.ovh.project.max_users = 1
    op.create("first", {})
    await op.wait_ready("first")
    op.create("second", {})
    obj = await op.wait_condition("second", "False", "OVHRejected")
    assert "maximum number of users" in op.ready(obj)["message"]  # type: ignore[index]
    op.delete("first")
    await op.wait_gone("first")
    op.patch("second", {"spec": {"description": "retry"}})
    await op.assert_consistent(["second"])


# --- Kubernetes faults ---------------------------------------------------------------------------


@pytest.mark.parametrize("fault", [
    {"method": "PATCH", "plural": "ovhobjectstorageusers", "subresource": "status", "status": 409},
    {"method": "PATCH", "plural": "ovhobjectstorageusers", "subresource": "status", "status": 500},
    {"method": "POST", "plural": "secrets", "status": 500},
    {"method": "POST", "plural": "secrets", "status": 409},
    {"method": "GET", "plural": "secrets", "status": 503},
    {"method": "PATCH", "plural": "ovhobjectstorageusers", "subresource": None, "status": 500},
], ids=["status-409", "status-500", "secret-create-500", "secret-create-409", "secret-read-503", "cr-patch-500"])
async def test_kubernetes_faults_converge(op: Operator, fault: dict[str, Any]) -> None:
    injected = op.kube.add_fault(times=3, **fault)
    op.create("kube-faults", GRANTS)
    await op.assert_consistent(["kube-faults"])
    assert injected.hits == 3


async def test_failing_reads_of_the_resource_are_retried(op: Operator) -> None:
    injected = op.kube.add_fault(method="get", plural="ovhobjectstorageusers", status=500, times=3)
    op.kube.create_namespace("elsewhere")
    op.custom.create_namespaced_custom_object("s3.ovh-operator.dev", "v1alpha1", "elsewhere",
                                              "ovhobjectstorageusers",
                                              {"metadata": {"name": "kube-faults"}, "spec": GRANTS})
    await until(lambda: injected.hits == 3, what="the faults to be hit")
    await op.assert_consistent([("elsewhere", "kube-faults")])


async def test_the_access_rules_the_readme_lists_suffice_and_nothing_more_is_called(op: Operator) -> None:
    """The sandbox grants this operator exactly ovh_api.ACCESS_RULES (every test runs that way); a call
    outside them is refused as OVH refuses it."""
    op.create("app", {})
    await op.assert_consistent(["app"])
    assert all(c.status != 403 for c in op.ovh.calls())
    app = await op.restart(ovh_service_name=None)  # the operator now has to list the projects to guess one
    op.create("guess", {})
    obj = await op.wait_condition("guess", "False", "OVHCredentialsRejected")
    assert "may not call GET /cloud/project" in op.ready(obj)["message"]  # type: ignore[index]
    assert app.ovh.configuration_error is None


async def test_a_pending_consumer_key_is_refused(op: Operator) -> None:
    import ovh

    client = ovh.Client(endpoint=op.ovh.url, application_key=op.ovh.credentials.application_key,
                        application_secret=op.ovh.credentials.application_secret)
    client._session = op.ovh.session()
    request = client.new_consumer_key_request()
    request.add_rule("GET", "/cloud/project/*")
    pending = request.request()
    assert pending["state"] == "pendingValidation" and "/auth/?credentialToken=" in pending["validationUrl"]
    with pytest.raises(ovh.exceptions.InvalidCredential):
        client.get(f"/cloud/project/{op.ovh.service_name}/role")
    assert op.ovh.validate_consumer_key(pending["consumerKey"]) == [("GET", "/cloud/project/*")]
    assert client.get(f"/cloud/project/{op.ovh.service_name}/role")["roles"]
    with pytest.raises(ovh.exceptions.NotGrantedCall):
        client.post(f"/cloud/project/{op.ovh.service_name}/user", roles=["objectstore_operator"])


@pytest.mark.parametrize("op", [{"permanent_retry_delay": 600}], indirect=True)
async def test_an_ovh_that_refused_conditions_would_be_reported_not_widened(op: Operator) -> None:
    """OVH documents no Condition; were it to refuse the one a prefix grant needs, the resource says so
    (and the grant is not silently turned into a listing of the whole bucket)."""
    op.ovh.project.refuse_conditions = True
    op.create("prefixed", {"grants": [{"bucket": "data", "prefix": "team/", "access": "read"}]})
    obj = await op.wait_condition("prefixed", "False", "OVHRejected")
    assert 'unsupported condition operator "StringLike"' in op.ready(obj)["message"]  # type: ignore[index]
    [user] = op.ovh_users(obj["metadata"]["uid"])
    assert user["policy"] is None and user["credentials"] == []


@pytest.mark.parametrize("op", [{"user_ready_timeout": 0.3}], indirect=True)
async def test_a_user_disabled_in_ovh_is_reported_and_kept(op: Operator) -> None:
    op.create("app", {"grants": [{"bucket": "data", "access": "read"}]})
    obj = await op.wait_ready("app")
    user_id = obj["status"]["userId"]
    op.ovh.project.set_user_status(user_id, "disabled")
    op.patch("app", {"spec": {"description": "look again"}})
    stuck = await op.wait_condition("app", "False", "UserStuck")
    assert "'disabled'" in op.ready(stuck)["message"]  # type: ignore[index]
    assert op.ovh.project.user(user_id)["status"] == "disabled"  # type: ignore[index]
    assert len(op.calls("POST", r"/user$")) == 1  # not replaced by a new user
