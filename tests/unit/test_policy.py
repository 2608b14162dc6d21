import json

import pytest

from ovh_s3_operator.errors import InvalidSpec
from ovh_s3_operator.model import Grant
from ovh_s3_operator.policy import SUPPORTED_ACTIONS, canonical, compile_policy


def grant(**kwargs: str) -> Grant:
    return Grant.model_validate(kwargs)


def test_no_grants_and_no_policy_is_an_empty_policy() -> None:
    assert compile_policy((), None) == {"Statement": []}


def test_read_grant_follows_ovh_read_example() -> None:
    policy = compile_policy((grant(bucket="logs", access="read"),), None)
    [statement] = policy["Statement"]
    assert statement["Effect"] == "Allow"
    assert set(statement["Action"]) == {
        "s3:GetObject", "s3:ListBucket", "s3:ListMultipartUploadParts", "s3:ListBucketMultipartUploads",
        "s3:GetBucketLocation",
    }
    assert statement["Resource"] == ["arn:aws:s3:::logs", "arn:aws:s3:::logs/*"]


def test_readwrite_adds_write_actions() -> None:
    [statement] = compile_policy((grant(bucket="logs", access="readwrite"),), None)["Statement"]
    assert {"s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:GetObject"} <= set(statement["Action"])
    assert "s3:*" not in statement["Action"]


def test_admin_is_s3_star_on_the_bucket() -> None:
    [statement] = compile_policy((grant(bucket="logs", access="admin"),), None)["Statement"]
    assert statement["Action"] == ["s3:*"]
    assert statement["Resource"] == ["arn:aws:s3:::logs", "arn:aws:s3:::logs/*"]


def test_prefix_limits_objects_and_listing() -> None:
    statements = compile_policy((grant(bucket="bk1", prefix="nightly/", access="read"),), None)["Statement"]
    by_sid = {s["Sid"]: s for s in statements}
    assert by_sid["Grant0Objects"]["Resource"] == ["arn:aws:s3:::bk1/nightly/*"]
    assert by_sid["Grant0List"]["Condition"] == {"StringLike": {"s3:prefix": ["nightly/*"]}}
    assert "s3:PutObject" not in by_sid["Grant0Objects"]["Action"]
    # Every action used is one OVH supports.
    assert {a for s in statements for a in s["Action"]} <= SUPPORTED_ACTIONS


def test_admin_with_prefix_is_refused() -> None:
    with pytest.raises(InvalidSpec, match=r"spec.grants\[0\]: admin access applies to the whole bucket"):
        compile_policy((grant(bucket="bk1", prefix="x/", access="admin"),), None)


def test_raw_policy_is_merged_after_grants_and_keeps_version() -> None:
    raw = {"Version": "2012-10-17", "Statement": [
        {"Sid": "Extra", "Effect": "Deny", "Action": "s3:DeleteObject", "Resource": "arn:aws:s3:::logs/keep/*"},
    ]}
    policy = compile_policy((grant(bucket="logs", access="readwrite"),), raw)
    assert policy["Version"] == "2012-10-17"
    assert [s["Sid"] for s in policy["Statement"]] == ["Grant0", "Extra"]
    assert policy["Statement"][1]["Action"] == ["s3:DeleteObject"]  # normalized to a list


@pytest.mark.parametrize(("raw", "problem"), [
    ({"Statement": [{"Effect": "Allow", "Action": ["s3:Foo"], "Resource": ["arn:aws:s3:::b"]}]},
     r"Statement\[0\].Action: unsupported S3 action 's3:Foo'"),
    ({"Statement": [{"Effect": "Maybe", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::b"]}]},
     r"Statement\[0\].Effect must be Allow or Deny"),
    ({"Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["b/*"]}]},
     r"Resource: 'b/\*' must look like arn:aws:s3:::bucket"),
    ({"Statement": [{"Effect": "Allow", "Action": [], "Resource": ["arn:aws:s3:::b"]}]},
     r"Action must be a non-empty string or list of strings"),
    ({"Statement": "not a list"}, r"spec.policy.Statement must be a list"),
    ({"Statements": []}, r"unsupported key\(s\) Statements"),
    ({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::b"}]},
     r"unsupported key\(s\) Principal"),
    ({"Statement": [{"Sid": "Grant0", "Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b"}]},
     r"duplicate Sid Grant0"),
])
def test_invalid_raw_policies_name_the_problem(raw: dict[str, object], problem: str) -> None:
    with pytest.raises(InvalidSpec, match=problem):
        compile_policy((grant(bucket="logs", access="read"),), raw)


def test_canonical_ignores_key_order_and_string_vs_list() -> None:
    a = {"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": ["arn:aws:s3:::b/*"]}]}
    b = json.loads('{"Statement":[{"Resource":"arn:aws:s3:::b/*","Action":["s3:GetObject"],"Effect":"Allow"}]}')
    assert canonical(a) == canonical(b)
    assert canonical(a) != canonical({"Statement": []})
    assert canonical(None) != canonical({"Statement": []})
