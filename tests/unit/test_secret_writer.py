"""What the Secret writer makes of a spec (the shape) and concludes from a Secret it owns (ownership is
decided on metadata alone)."""

import base64
import json
from typing import Any

import pytest

from ovh_s3_operator.errors import InvalidSpec
from ovh_s3_operator.model import Resource, parse_spec
from ovh_s3_operator.secret_writer import (
    DIGEST_ANNOTATION,
    RECORD_ANNOTATION,
    ObservedSecret,
    Record,
    Shape,
    digest,
    endpoint_url,
    owned_by,
    shape,
)

from ..support import Redacted

RESOURCE = Resource.from_body({"metadata": {"namespace": "ns", "name": "app", "uid": "uid-1", "generation": 1}})
ACCESS, SECRET = "AK", Redacted("SK-secret")


def shape_of(secret: dict[str, Any] | None = None, **spec: Any) -> Shape:
    parsed = parse_spec({"grants": [{"bucket": "b-one", "access": "read"}], **spec, "secret": secret or {}})
    return shape(parsed, RESOURCE, parsed.region or "gra").for_user(100001, "user-x")


def body(values: dict[str, str], *, annotations: dict[str, str] | None = None,
         labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"annotations": annotations or {}, "labels": labels or {}, "uid": "s-1",
                         "resourceVersion": "7"},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}}


def written(target: Shape, access: str = ACCESS, secret: str = SECRET) -> dict[str, Any]:
    """A Secret as the writer writes it for ``target``."""
    values = target.values(access, secret)
    data = body(values)["data"]
    record = Record(target.access_key, target.secret_key, target.inputs,
                    ObservedSecret.from_body({"data": data}).data_digest,
                    tuple(sorted(target.labels)), tuple(sorted(target.annotations)))
    return {**body(values, labels=target.all_labels, annotations={
        **target.annotations, DIGEST_ANNOTATION: digest(access, secret), RECORD_ANNOTATION: record.to_annotation()}),
        "data": data}


def test_a_secret_as_written_is_up_to_date() -> None:
    target = shape_of()
    observed = ObservedSecret.from_body(written(target))
    assert observed.intact
    assert (observed.uid, observed.resource_version) == ("s-1", "7")
    assert observed.up_to_date("AK", target)
    assert not observed.up_to_date("AK", shape_of(region="sbg"))  # the region changed in the spec
    assert not observed.up_to_date("AK", target.for_user(100001, "user-y"))  # a template could show it
    assert not observed.up_to_date("OTHER", target)  # another key is wanted
    assert not observed.up_to_date(None, target)


def test_each_part_of_the_shape_is_checked() -> None:
    target = shape_of({"keys": {"accessKeyId": "S3_KEY"}, "template": {"cfg": "k={{ accessKeyId }}"},
                       "labels": {"team": "a"}, "annotations": {"note": "x"}})
    secret = written(target)
    assert ObservedSecret.from_body(secret).up_to_date("AK", target)
    for other in ({"keys": {"accessKeyId": "S3_ACCESS"}}, {"template": {"cfg": "k={{ accessKeyId }}\n"}},
                  {"labels": {"team": "b"}}, {"annotations": {}}, {"format": "COSI", "keys": {}}):
        changed = {"keys": {"accessKeyId": "S3_KEY"}, "template": {"cfg": "k={{ accessKeyId }}"},
                   "labels": {"team": "a"}, "annotations": {"note": "x"}} | other
        assert not ObservedSecret.from_body(secret).up_to_date("AK", shape_of(changed)), other
    for edit in ({"labels": {"team": None}}, {"annotations": {"note": "y"}}, {"data": {"extra": "eA=="}},
                 {"data": {"cfg": "eA=="}}):
        edited = json.loads(json.dumps(secret))
        for part, changes in edit.items():
            place = edited["metadata"] if part != "data" else edited
            place[part] = {k: v for k, v in {**place[part], **changes}.items() if v is not None}
        observed = ObservedSecret.from_body(edited)
        assert observed.intact and not observed.up_to_date("AK", target), edit


def test_the_credentials_are_found_where_the_record_says() -> None:
    target = shape_of({"keys": {"accessKeyId": "S3_KEY", "secretAccessKey": "S3_SECRET"}})
    observed = ObservedSecret.from_body(written(target))
    assert observed.intact and observed.access == "AK"
    assert observed.record.secret_key == "S3_SECRET"
    assert observed.up_to_date("AK", target)
    assert not observed.up_to_date("AK", shape_of())  # renamed back: rewritten, from the same credentials


def test_a_secret_of_an_earlier_version_is_intact_but_rewritten() -> None:
    values = {"AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_ENDPOINT_URL": endpoint_url("gra"),
              "AWS_REGION": "gra"}
    observed = ObservedSecret.from_body(body(values, annotations={DIGEST_ANNOTATION: digest("AK", SECRET)}))
    assert observed.intact and observed.access == "AK" and observed.record == Record()
    assert not observed.up_to_date("AK", shape_of())


@pytest.mark.parametrize("record", ["not json", "[]", '{"accessKeyId": 1}', json.dumps({
    "accessKeyId": "A", "secretAccessKey": "S", "inputs": "", "data": "", "labels": [1], "annotations": []})])
def test_a_record_that_does_not_parse_is_the_default(record: str) -> None:
    assert Record.parse(record) == Record()


def test_an_edited_secret_is_not_intact() -> None:
    edited = written(shape_of())
    edited["data"]["AWS_SECRET_ACCESS_KEY"] = base64.b64encode(b"tampered").decode()
    assert not ObservedSecret.from_body(edited).intact
    no_digest = written(shape_of())
    del no_digest["metadata"]["annotations"][DIGEST_ANNOTATION]
    assert not ObservedSecret.from_body(no_digest).intact
    garbage = written(shape_of())
    garbage["data"]["AWS_ACCESS_KEY_ID"] = "%%% not base64"
    assert not ObservedSecret.from_body(garbage).intact


def test_the_default_shape() -> None:
    assert shape_of().values(ACCESS, SECRET) == {
        "AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_ENDPOINT_URL": "https://s3.gra.io.cloud.ovh.net",
        "AWS_REGION": "gra"}
    assert shape_of().all_labels == {"app.kubernetes.io/managed-by": "ovh-s3-operator",
                                     "s3.ovh-operator.dev/owner": "app"}


def test_renamed_keys_and_templates() -> None:
    target = shape_of({"keys": {"accessKeyId": "S3_KEY", "region": "S3_REGION"},
                       "template": {"who": "{{ namespace }}/{{ name }} {{ userId }} {{ username }} {{ buckets }}"}},
                      grants=[{"bucket": "b-one", "access": "read"}, {"bucket": "b-two", "access": "read"},
                              {"bucket": "b-one", "prefix": "p/", "access": "readwrite"}])
    assert target.values(ACCESS, SECRET) == {
        "S3_KEY": "AK", "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_ENDPOINT_URL": "https://s3.gra.io.cloud.ovh.net",
        "S3_REGION": "gra", "who": "ns/app 100001 user-x ['b-one', 'b-two']"}


def test_the_cosi_shape() -> None:
    values = shape_of({"format": "COSI", "keys": {"region": "S3_REGION"}}).values(ACCESS, SECRET)
    assert {key: values[key] for key in ("COSI_PROTOCOL", "BUCKET_NAME", "AWS_DEFAULT_REGION",
                                         "AWS_S3_ADDRESSING_STYLE", "AWS_ENDPOINT_URL", "S3_REGION")} == {
        "COSI_PROTOCOL": "S3", "BUCKET_NAME": "b-one", "AWS_DEFAULT_REGION": "gra", "AWS_S3_ADDRESSING_STYLE": "path",
        "AWS_ENDPOINT_URL": "https://s3.gra.io.cloud.ovh.net", "S3_REGION": "gra"}
    assert (values["AWS_ACCESS_KEY_ID"], values["AWS_SECRET_ACCESS_KEY"]) == ("AK", SECRET)
    assert json.loads(values["BucketInfo"])["spec"] == {
        "bucketName": "b-one", "authenticationType": "Key", "protocols": ["S3"], "secretAzure": None,
        "secretS3": {"endpoint": "https://s3.gra.io.cloud.ovh.net", "region": "gra", "accessKeyID": "AK",
                     "accessSecretKey": SECRET}}


@pytest.mark.parametrize(("secret", "spec", "message"), [
    ({"keys": {"accessKeyId": "KEY", "secretAccessKey": "KEY"}}, {},
     "spec.secret.keys.secretAccessKey: the key KEY is also spec.secret.keys.accessKeyId; give each value its own"),
    ({"keys": {"region": "AWS_ENDPOINT_URL"}}, {}, "spec.secret.keys.region: the key AWS_ENDPOINT_URL is also "
                                                   "spec.secret.keys.endpoint"),
    ({"template": {"AWS_REGION": "x"}}, {}, "spec.secret.template.AWS_REGION: the key AWS_REGION is already "
                                           "spec.secret.keys.region; give the template entry another name"),
    ({"format": "COSI", "template": {"BUCKET_NAME": "x"}}, {},
     "spec.secret.template.BUCKET_NAME: the key BUCKET_NAME is already written by format COSI"),
    ({"format": "COSI", "keys": {"region": "AWS_DEFAULT_REGION"}}, {},
     "spec.secret.keys.region: format COSI writes the key AWS_DEFAULT_REGION itself; choose another name"),
    ({"format": "COSI", "keys": {"accessKeyId": "KEY", "endpoint": "URL"}}, {},
     "spec.secret.keys.accessKeyId, spec.secret.keys.endpoint: format COSI reads AWS_ACCESS_KEY_ID, "
     "AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL under these names"),
    ({"format": "COSI"}, {"grants": []}, "spec.secret.format: COSI needs a bucket for BUCKET_NAME"),
    ({"template": {"cfg": "{{ buckets[1] }}"}}, {}, "spec.secret.template.cfg: line 1: uses something undefined"),
    ({"template": {"cfg": "{% for %}"}}, {}, "spec.secret.template.cfg: line 1: "),
    ({"template": {f"t{i}": "{{ 'x' * 32768 }}" for i in range(16)}}, {},
     "spec.secret.template: the Secret would hold more than 512 KiB; shorten the templates"),
], ids=["keys-collide", "key-takes-a-default", "template-takes-a-key", "template-takes-a-cosi-key",
        "key-takes-a-cosi-key", "cosi-renamed", "cosi-without-bucket", "render-fails", "syntax", "too-much-data"])
def test_shapes_that_cannot_be_written(secret: dict[str, Any], spec: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidSpec) as error:
        shape_of(secret, **spec)
    assert message in error.value.message


def test_ownership_is_the_controller_reference_with_the_resource_uid() -> None:
    mine = {"ownerReferences": [{"uid": "uid-1", "controller": True}]}
    assert owned_by(mine, RESOURCE)
    assert not owned_by({"ownerReferences": [{"uid": "uid-1"}]}, RESOURCE)  # not the controller
    assert not owned_by({"ownerReferences": [{"uid": "other", "controller": True}]}, RESOURCE)
    assert not owned_by({}, RESOURCE)


def test_digest_depends_on_both_halves() -> None:
    assert digest("a", "b") != digest("a", "c") != digest("c", "b")
    assert digest("ab", "c") != digest("a", "bc")
