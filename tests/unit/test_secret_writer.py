"""What the Secret writer concludes from a Secret it owns (ownership is decided on metadata alone)."""

import base64
from typing import Any

from ovh_s3_operator.model import Resource
from ovh_s3_operator.secret_writer import DIGEST_ANNOTATION, ObservedSecret, digest, endpoint_url, owned_by

RESOURCE = Resource.from_body({"metadata": {"namespace": "ns", "name": "app", "uid": "uid-1", "generation": 1}})


def body(values: dict[str, str], *, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"annotations": annotations or {}, "uid": "s-1", "resourceVersion": "7"},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}}


def written(access: str = "AK", secret: str = "SK", region: str = "gra") -> dict[str, Any]:
    values = {"AWS_ACCESS_KEY_ID": access, "AWS_SECRET_ACCESS_KEY": secret,
              "AWS_ENDPOINT_URL": endpoint_url(region), "AWS_REGION": region}
    return body(values, annotations={DIGEST_ANNOTATION: digest(access, secret)})


def test_a_secret_as_written_is_up_to_date() -> None:
    observed = ObservedSecret.from_body(written())
    assert observed.intact
    assert (observed.uid, observed.resource_version) == ("s-1", "7")
    assert observed.up_to_date("AK", "gra")
    assert not observed.up_to_date("AK", "sbg")  # region changed in the spec
    assert not observed.up_to_date("OTHER", "gra")  # another key is wanted
    assert not observed.up_to_date(None, "gra")


def test_an_edited_secret_is_not_intact() -> None:
    edited = written()
    edited["data"]["AWS_SECRET_ACCESS_KEY"] = base64.b64encode(b"tampered").decode()
    assert not ObservedSecret.from_body(edited).intact
    no_digest = written()
    no_digest["metadata"]["annotations"] = {}
    assert not ObservedSecret.from_body(no_digest).intact
    garbage = written()
    garbage["data"]["AWS_ACCESS_KEY_ID"] = "%%% not base64"
    assert not ObservedSecret.from_body(garbage).intact


def test_ownership_is_the_controller_reference_with_the_resource_uid() -> None:
    mine = {"ownerReferences": [{"uid": "uid-1", "controller": True}]}
    assert owned_by(mine, RESOURCE)
    assert not owned_by({"ownerReferences": [{"uid": "uid-1"}]}, RESOURCE)  # not the controller
    assert not owned_by({"ownerReferences": [{"uid": "other", "controller": True}]}, RESOURCE)
    assert not owned_by({}, RESOURCE)


def test_digest_depends_on_both_halves() -> None:
    assert digest("a", "b") != digest("a", "c") != digest("c", "b")
    assert digest("ab", "c") != digest("a", "bc")
