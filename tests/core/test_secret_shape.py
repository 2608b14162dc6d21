"""The shape of the credentials Secret (spec.secret): renamed keys, COSI's keys, templates, labels and
annotations; reshaping keeps the S3 key and reads no secret from OVH; the operator owns the data."""

from __future__ import annotations

import json
from typing import Any

from ovh_s3_operator.model import ROTATE_ANNOTATION
from ovh_s3_operator.secret_writer import RECORD_ANNOTATION
from ovh_s3_operator_sandbox.harness import until

from ..support import Redacted
from .conftest import Operator

GRANTS = [{"bucket": "shape-data", "access": "read"}, {"bucket": "shape-logs", "access": "readwrite"}]
DEFAULT_KEYS = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_REGION"}
CLIENT_CONF = """[client]
key = {{ accessKeyId }}
secret = {{ secretAccessKey }}
{% for bucket in buckets %}
bucket.{{ loop.index }} = {{ bucket }}
{% endfor %}
owner = {{ namespace }}/{{ name }} (OVH user {{ userId }}, {{ username }})
"""


def key_writes(op: Operator) -> list[Any]:
    """OVH calls that create an S3 key or read its secret."""
    return op.calls("POST", r"/s3Credentials(/[^/]+/secret)?$")


def credential(op: Operator, obj: dict[str, Any]) -> dict[str, str]:
    [user] = op.ovh_users(obj["metadata"]["uid"])
    [only] = user["credentials"]
    return dict(only)


def metadata(op: Operator, name: str) -> dict[str, Any]:
    return dict((op.secret(name) or {})["metadata"])


async def test_a_secret_in_the_shape_the_spec_asks_for(op: Operator) -> None:
    keys = {"accessKeyId": "S3_KEY", "secretAccessKey": "S3_SECRET", "endpoint": "S3_URL", "region": "S3_REGION"}
    op.create("shaped", {"region": "sbg", "grants": GRANTS, "secret": {
        "keys": keys, "template": {"client.conf": CLIENT_CONF}, "labels": {"team": "a"},
        "annotations": {"example.com/note": "for the backup job"}}})
    await op.assert_consistent(["shaped"])
    obj = op.get("shaped")
    assert obj is not None
    issued = credential(op, obj)
    values = op.secret_values("shaped-s3")
    assert values is not None and set(values) == {*keys.values(), "client.conf"}
    assert (values["S3_URL"], values["S3_REGION"]) == ("https://s3.sbg.io.cloud.ovh.net", "sbg")
    assert values["client.conf"] == Redacted(
        f"[client]\nkey = {issued['access']}\nsecret = {issued['secret']}\nbucket.1 = shape-data\n"
        f"bucket.2 = shape-logs\nowner = default/shaped (OVH user {obj['status']['userId']}, "
        f"{obj['status']['username']})\n")
    meta = metadata(op, "shaped-s3")
    assert meta["labels"]["team"] == "a" and meta["labels"]["app.kubernetes.io/managed-by"] == "ovh-s3-operator"
    assert meta["annotations"]["example.com/note"] == "for the backup job"


async def test_reshaping_keeps_the_key_and_reads_no_secret_from_ovh(op: Operator) -> None:
    op.create("app", {"grants": GRANTS})
    await op.assert_consistent(["app"])
    before = op.get("app")
    assert before is not None
    issued = credential(op, before)
    op.core.patch_namespaced_secret("app-s3", "default", {"metadata": {"labels": {"backup.example.com/include": "y"}}})
    writes = len(key_writes(op))

    op.patch("app", {"spec": {"secret": {"keys": {"accessKeyId": "S3_KEY", "secretAccessKey": "S3_SECRET"},
                                         "template": {"client.conf": CLIENT_CONF}, "labels": {"team": "a"}}}})
    await op.wait_ready("app")
    values = op.secret_values("app-s3")
    assert values is not None
    assert set(values) == {"S3_KEY", "S3_SECRET", "AWS_ENDPOINT_URL", "AWS_REGION", "client.conf"}
    assert (values["S3_KEY"], values["S3_SECRET"]) == (issued["access"], issued["secret"])
    assert issued["secret"] in values["client.conf"]
    assert metadata(op, "app-s3")["labels"]["team"] == "a"

    op.patch("app", {"spec": {"secret": None}})  # back to the default shape
    await op.wait_ready("app")
    values = op.secret_values("app-s3")
    assert values is not None and set(values) == DEFAULT_KEYS
    labels = metadata(op, "app-s3")["labels"]
    assert "team" not in labels  # the operator's label, gone with the spec
    assert labels["backup.example.com/include"] == "y"  # someone else's, kept
    assert len(key_writes(op)) == writes  # same key, and its secret came from the Secret itself
    await op.assert_consistent(["app"])
    assert credential(op, op.get("app") or {}) == issued


async def test_the_operator_owns_the_data_of_its_secret(op: Operator) -> None:
    op.create("owned", {"grants": GRANTS, "secret": {"template": {"client.conf": CLIENT_CONF}}})
    await op.assert_consistent(["owned"])
    written = op.secret("owned-s3")
    assert written is not None
    writes = len(key_writes(op))
    op.core.patch_namespaced_secret("owned-s3", "default", {
        "metadata": {"labels": {"example.com/seen": "y"}},
        "data": {"client.conf": "ZWRpdGVk", "extra": "eA=="}})  # "edited", "x"
    await until(lambda: (op.secret("owned-s3") or {}).get("data") == written["data"],
                what="the Secret's data restored exactly")
    assert metadata(op, "owned-s3")["labels"]["example.com/seen"] == "y"
    assert len(key_writes(op)) == writes  # the credentials were intact: nothing to ask OVH
    await op.wait_events("SecretWritten")


async def test_a_secret_of_an_earlier_version_is_taken_over_without_asking_ovh(op: Operator) -> None:
    op.create("old", {"grants": GRANTS})
    await op.assert_consistent(["old"])
    writes = len(key_writes(op))
    # What an earlier version wrote: the default keys and the credentials digest, without the record.
    op.core.patch_namespaced_secret("old-s3", "default", {"metadata": {"annotations": {RECORD_ANNOTATION: None}}})
    await until(lambda: RECORD_ANNOTATION in metadata(op, "old-s3")["annotations"], what="the record written")
    assert len(key_writes(op)) == writes
    await op.assert_consistent(["old"])


async def test_a_rotation_writes_the_new_key_in_the_same_shape(op: Operator) -> None:
    keys = {"accessKeyId": "S3_KEY", "secretAccessKey": "S3_SECRET"}
    op.create("turning", {"grants": GRANTS, "secret": {"keys": keys, "template": {"client.conf": CLIENT_CONF}}})
    old = (await op.wait_ready("turning"))["status"]["accessKeyId"]
    op.patch("turning", {"metadata": {"annotations": {ROTATE_ANNOTATION: "now"}}})
    await until(lambda: (op.get("turning") or {}).get("status", {}).get("lastRotationRequest") == "now",
                what="the rotation")
    obj = await op.wait_ready("turning")
    new = obj["status"]["accessKeyId"]
    [user] = op.ovh_users(obj["metadata"]["uid"])
    secret = next(c["secret"] for c in user["credentials"] if c["access"] == new)
    values = op.secret_values("turning-s3")
    assert values is not None and set(values) == {"S3_KEY", "S3_SECRET", "AWS_ENDPOINT_URL", "AWS_REGION",
                                                  "client.conf"}
    assert new != old and (values["S3_KEY"], values["S3_SECRET"]) == (new, secret)
    assert f"key = {new}\nsecret = {secret}\n" in values["client.conf"] and old not in values["client.conf"]


async def test_cosi_keys(op: Operator) -> None:
    op.create("cosi", {"region": "waw", "grants": GRANTS, "secret": {"format": "COSI"}})
    await op.assert_consistent(["cosi"])
    values = op.secret_values("cosi-s3")
    assert values is not None
    assert set(values) == DEFAULT_KEYS | {"COSI_PROTOCOL", "BUCKET_NAME", "AWS_DEFAULT_REGION",
                                          "AWS_S3_ADDRESSING_STYLE", "BucketInfo"}
    assert (values["COSI_PROTOCOL"], values["BUCKET_NAME"], values["AWS_DEFAULT_REGION"]) == ("S3", "shape-data",
                                                                                                "waw")
    bucket_info = json.loads(values["BucketInfo"])["spec"]
    assert (bucket_info["bucketName"], bucket_info["secretS3"]["accessKeyID"]) == ("shape-data",
                                                                                   values["AWS_ACCESS_KEY_ID"])
    assert bucket_info["secretS3"]["accessSecretKey"] == values["AWS_SECRET_ACCESS_KEY"]


async def test_a_template_that_fails_only_with_the_real_secret(op: Operator) -> None:
    """Validation renders with placeholder credentials: this one passes it, then fails on the real secret.
    The message says where, never what; nothing is lost, and the fix is Ready with the same key."""
    op.create("late", {"grants": GRANTS, "secret": {"template": {"check": "{{ {'0' * 32: 'ok'}[secretAccessKey] }}"}}})
    obj = await op.wait_condition("late", "False", "InvalidSpec")
    assert op.ready(obj)["message"] == (  # type: ignore[index]
        "spec.secret.template.check: line 1: uses something undefined: a misspelt attribute, a missing key or an "
        "index past the end of a list; fix the template")
    secret = credential(op, obj)["secret"]
    assert secret not in json.dumps(obj) and secret not in json.dumps(await op.events())
    assert op.secret("late-s3") is None
    op.patch("late", {"spec": {"secret": {"template": {"check": "{{ secretAccessKey|length }}"}}}})
    await op.assert_consistent(["late"])
    assert (op.secret_values("late-s3") or {})["check"] == "32"
    assert len(op.calls("POST", r"/s3Credentials$")) == 1
