import pytest

from ovh_s3_operator.errors import InvalidSpec
from ovh_s3_operator.model import Resource, parse_spec


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
])
def test_invalid_specs_name_the_field(raw: dict[str, object], problem: str) -> None:
    with pytest.raises(InvalidSpec, match=problem):
        parse_spec(raw)


def test_resource_from_body() -> None:
    body = {"metadata": {"namespace": "team-a", "name": "backup", "uid": "u-1", "generation": 3,
                         "deletionTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"region": "gra"}}
    resource = Resource.from_body(body)
    assert (resource.key, resource.generation, resource.deleting) == ("team-a/backup", 3, True)
    assert resource.marker == "[osu:u-1]"
    ref = resource.owner_reference()
    assert (ref["uid"], ref["controller"], ref["kind"]) == ("u-1", True, "OVHObjectStorageUser")
