import base64
from typing import Any

from ovh_s3_operator.model import Resource
from ovh_s3_operator.secrets import DIGEST_ANNOTATION, ObservedSecret, digest, endpoint_url

RESOURCE = Resource(namespace="ns", name="app", uid="uid-1", generation=1, spec={}, status={}, deleting=False)


def body(values: dict[str, str], *, owner: str = "uid-1", annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"ownerReferences": [{"uid": owner}], "annotations": annotations or {}},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}}


def written(access: str = "AK", secret: str = "SK", region: str = "gra") -> dict[str, Any]:
    values = {"AWS_ACCESS_KEY_ID": access, "AWS_SECRET_ACCESS_KEY": secret,
              "AWS_ENDPOINT_URL": endpoint_url(region), "AWS_REGION": region}
    return body(values, annotations={DIGEST_ANNOTATION: digest(access, secret)})


def test_a_secret_as_written_is_up_to_date() -> None:
    observed = ObservedSecret.from_body(written(), RESOURCE)
    assert observed.owned and observed.intact
    assert observed.up_to_date("AK", "gra")
    assert not observed.up_to_date("AK", "sbg")  # region changed in the spec
    assert not observed.up_to_date("OTHER", "gra")  # another key is wanted


def test_an_edited_secret_is_not_intact() -> None:
    edited = written()
    edited["data"]["AWS_SECRET_ACCESS_KEY"] = base64.b64encode(b"tampered").decode()
    assert not ObservedSecret.from_body(edited, RESOURCE).intact
    no_digest = written()
    no_digest["metadata"]["annotations"] = {}
    assert not ObservedSecret.from_body(no_digest, RESOURCE).intact


def test_ownership_is_by_uid() -> None:
    assert not ObservedSecret.from_body(written() | {"metadata": {"ownerReferences": [{"uid": "x"}]}}, RESOURCE).owned
    assert not ObservedSecret.from_body(body({}), Resource(**{**RESOURCE.__dict__, "uid": "other"})).owned


def test_digest_depends_on_both_halves() -> None:
    assert digest("a", "b") != digest("a", "c") != digest("c", "b")
    assert digest("ab", "c") != digest("a", "bc")
