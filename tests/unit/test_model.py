"""Parsing what tenants write: the spec is validated, the status is never trusted."""

import datetime

import pytest

from ovh_s3_operator.errors import InvalidSpec
from ovh_s3_operator.model import DESCRIPTION_LIMIT, Marker, Resource, Status, parse_spec, read_marker


def test_defaults() -> None:
    spec = parse_spec({})
    assert spec.roles == ("objectstore_operator",)
    assert spec.grants == ()
    assert spec.policy is None
    assert spec.secret.name is None


@pytest.mark.parametrize(("raw", "problem"), [
    ({"grants": [{"bucket": "ok-bucket", "access": "write"}]}, r"spec.grants\[0\].access: Input should be 'read'"),
    ({"grants": [{"bucket": "Bad_Bucket", "access": "read"}]}, r"spec.grants\[0\].bucket: .*invalid bucket name"),
    ({"grants": [{"bucket": "ab", "access": "read"}]}, r"invalid bucket name 'ab'"),
    ({"grants": [{"access": "read"}]}, r"spec.grants\[0\].bucket: Field required"),
    ({"roles": []}, r"spec.roles: "),
    ({"secrets": {"name": "x"}}, r"spec.secrets: Extra inputs are not permitted"),
    ({"policy": "{}"}, r"spec.policy: Input should be a valid dictionary"),
    ({"description": "line\nbreak"}, r"spec.description: .*printable characters only"),
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
