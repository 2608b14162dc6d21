"""Parsing what tenants write: the spec is validated, the status is never trusted."""

import datetime
from typing import Any

import pytest

from ovh_s3_operator.errors import InvalidSpec
from ovh_s3_operator.manifests import crd_documents
from ovh_s3_operator.model import (
    ANNOTATION_LENGTH,
    DESCRIPTION_LIMIT,
    PLURAL,
    SECRET_METADATA_ENTRIES,
    TEMPLATE_ENTRIES,
    TEMPLATE_LENGTH,
    Marker,
    Resource,
    SecretFormat,
    Status,
    parse_spec,
    read_marker,
)


def test_defaults() -> None:
    spec = parse_spec({})
    assert spec.roles == ("objectstore_operator",)
    assert spec.grants == ()
    assert spec.policy is None
    assert spec.secret.name is None
    assert spec.secret.format is SecretFormat.DEFAULT
    assert (spec.secret.template, spec.secret.labels, spec.secret.annotations) == ({}, {}, {})


@pytest.mark.parametrize(("raw", "problem"), [
    ({"grants": [{"bucket": "ok-bucket", "access": "write"}]}, r"spec.grants\[0\].access: Input should be 'read'"),
    ({"grants": [{"bucket": "Bad_Bucket", "access": "read"}]}, r"spec.grants\[0\].bucket: .*invalid bucket name"),
    ({"grants": [{"bucket": "ab", "access": "read"}]}, r"invalid bucket name 'ab'"),
    ({"grants": [{"access": "read"}]}, r"spec.grants\[0\].bucket: Field required"),
    ({"roles": []}, r"spec.roles: "),
    ({"secrets": {"name": "x"}}, r"spec.secrets: Extra inputs are not permitted"),
    ({"policy": "{}"}, r"spec.policy: Input should be a valid dictionary"),
    ({"description": "line\nbreak"}, r"spec.description: .*printable characters only"),
    ({"secret": {"keys": {"accessKeyId": "S3 KEY"}}}, r"spec.secret.keys.accessKeyId: .*invalid key 'S3 KEY'"),
    ({"secret": {"keys": {"region": ".."}}}, r"spec.secret.keys.region: .*not '.' alone, not starting with '..'"),
    ({"secret": {"keys": {"endpoint": "E" * 254}}}, r"spec.secret.keys.endpoint: .*longer than 253 characters"),
    ({"secret": {"keys": {"bucket": "B"}}}, r"spec.secret.keys.bucket: Extra inputs are not permitted"),
    ({"secret": {"format": "cosi"}}, r"spec.secret.format: Input should be 'Default' or 'COSI'"),
    ({"secret": {"template": {"../etc": "x"}}}, r"spec.secret.template: .*invalid key '../etc'"),
    ({"secret": {"template": {"big": "x" * 8193}}}, r"spec.secret.template.big: String should have at most 8192"),
    ({"secret": {"template": {f"k{i}": "" for i in range(17)}}}, r"spec.secret.template: .*at most 16 items"),
    ({"secret": {"labels": {"app.kubernetes.io/managed-by": "me"}}},
     r"spec.secret.labels: .*the label app.kubernetes.io/managed-by is reserved for the operator"),
    ({"secret": {"annotations": {"s3.ovh-operator.dev/credentials-digest": "x"}}},
     r"spec.secret.annotations: .*the annotation s3.ovh-operator.dev/credentials-digest is reserved"),
    ({"secret": {"labels": {"x.s3.ovh-operator.dev/owner": "me"}}}, r"is reserved for the operator"),
    ({"secret": {"labels": {"Team.Example/x": "a"}}}, r"invalid key 'Team.Example/x': its prefix"),
    ({"secret": {"labels": {"-team": "a"}}}, r"invalid key '-team': its name must be 1-63"),
    ({"secret": {"labels": {"team": "a b"}}}, r"invalid value 'a b' of label team"),
    ({"secret": {"labels": {"team": "a" * 64}}}, r"spec.secret.labels.team: String should have at most 63"),
    ({"secret": {"annotations": {"note": "a" * 4097}}}, r"spec.secret.annotations.note: String should have at most"),
])
def test_invalid_specs_name_the_field(raw: dict[str, object], problem: str) -> None:
    with pytest.raises(InvalidSpec, match=problem):
        parse_spec(raw)


def test_resource_from_body() -> None:
    body = {"metadata": {"namespace": "team-a", "name": "backup", "uid": "u-1", "generation": 3,
                         "resourceVersion": "42", "finalizers": ["f"], "deletionTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"region": "gra"}, "status": "not a mapping"}
    resource = Resource.from_body(body)
    assert (resource.key, resource.generation, resource.deleting) == ("team-a/backup", 3, True)
    assert (resource.resource_version, resource.finalizers, resource.status) == ("42", ("f",), Status())
    ref = resource.owner_reference()
    assert (ref["uid"], ref["controller"], ref["kind"]) == ("u-1", True, "OVHObjectStorageUser")


def test_status_fields_of_the_wrong_type_are_absent() -> None:
    status = Status.parse({"userId": "100001", "username": 7, "accessKeyId": "", "secretName": "s",
                           "userRequestedAt": "yesterday", "observedGeneration": -1,
                           "conditions": [{"type": "Ready", "status": "True", "observedGeneration": "2"}, "junk"]})
    assert (status.user_id, status.username, status.access_key_id, status.user_requested_at) == (None, None, None, None)
    assert status.secret_name == "s" and status.observed_generation is None
    assert status.ready is not None and status.ready.observed_generation is None
    assert Status.parse({"userId": True}).user_id is None  # a bool is not an id
    assert Status.parse({"userRequestedAt": "2026-01-02T03:04:05Z"}).user_requested_at == \
        datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)


def test_the_marker_comes_first_and_survives_any_description() -> None:
    marker = Marker("cluster-1", "uid-1")
    description = marker.description("team-a", "backup", "x" * 1000)
    assert description.startswith("[osu:cluster-1/uid-1] team-a/backup xxx")
    assert len(description) == DESCRIPTION_LIMIT
    assert marker.is_on(description)
    assert marker.is_on(marker.text)
    assert not marker.is_on(f"team-b/evil {marker.text}")  # only at the start counts
    assert not marker.is_on(marker.text + "x")
    assert not Marker("cluster-2", "uid-1").is_on(description)  # another cluster's user
    marked = read_marker(description)
    assert marked is not None
    assert (marked.marker, marked.namespace, marked.name) == (marker, "team-a", "backup")
    assert read_marker("hand-made user") is None


def test_labels_and_annotations_as_kubernetes_allows_them() -> None:
    secret = parse_spec({"secret": {"labels": {"example.com/team": "a", "tier": "", "x" * 63: "v.1_2-3"},
                                    "annotations": {"kubernetes.io/description": "any text, even long " * 100,
                                                    "s3.ovh-operator.dev.example.com/x": ""}}}).secret
    assert len(secret.labels) == 3 and len(secret.annotations) == 2


def _secret_schema() -> dict[str, Any]:
    [crd] = [doc for doc in crd_documents() if doc["spec"]["names"]["plural"] == PLURAL]
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return dict(schema["properties"]["spec"]["properties"]["secret"])


def _unexplained(node: dict[str, Any], path: str) -> list[str]:
    problems = [] if node.get("description") else [f"{path}: no description"]
    if node.get("type") == "string" and "maxLength" not in node and "enum" not in node:
        problems.append(f"{path}: no maxLength")
    if node.get("type") == "object" and "additionalProperties" in node and "maxProperties" not in node:
        problems.append(f"{path}: no maxProperties")
    for name, child in (node.get("properties") or {}).items():
        problems += _unexplained(child, f"{path}.{name}")
    if isinstance(node.get("additionalProperties"), dict):
        problems += _unexplained(node["additionalProperties"], f"{path}.*")
    return problems


def test_the_crd_explains_and_bounds_every_field_of_spec_secret() -> None:
    schema = _secret_schema()
    assert _unexplained(schema, "spec.secret") == []
    fields = schema["properties"]
    assert (fields["template"]["maxProperties"], fields["template"]["additionalProperties"]["maxLength"]) == (
        TEMPLATE_ENTRIES, TEMPLATE_LENGTH)
    assert fields["labels"]["maxProperties"] == fields["annotations"]["maxProperties"] == SECRET_METADATA_ENTRIES
    assert fields["annotations"]["additionalProperties"]["maxLength"] == ANNOTATION_LENGTH
    assert fields["format"]["enum"] == [f.value for f in SecretFormat]
    assert set(fields["keys"]["properties"]) == set(parse_spec({}).secret.keys.model_dump(by_alias=True))
