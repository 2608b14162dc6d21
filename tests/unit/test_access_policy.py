"""The access-policy check: what a namespace may ask for, decided conservatively."""

from __future__ import annotations

from typing import Any

import pytest

from ovh_s3_operator.access_policy import (
    ALLOW_ANY_BUCKET,
    DENY_ALL,
    AccessIndex,
    Allowance,
    BucketRule,
    check,
    glob_covers,
    selector_matches,
)
from ovh_s3_operator.model import Access, parse_spec

TEAM_A = Allowance(
    policies=("team-a",),
    buckets=(BucketRule("team-a-*", Access.READWRITE), BucketRule("shared-datasets", Access.READ, ("public/*",)),
             BucketRule("team-a-admin", Access.ADMIN)),
    roles=frozenset({"objectstore_operator"}), regions=("gra", "sbg"), raw_policy=True)


def verdict(spec: dict[str, Any], allowance: Allowance = TEAM_A, region: str = "gra") -> tuple[str, ...]:
    return check(parse_spec(spec), region, allowance).problems


@pytest.mark.parametrize(("allowed", "wanted", "covered"), [
    ("*", "anything*", True),
    ("team-a-*", "team-a-backups", True),
    ("team-a-*", "team-b-backups", False),
    ("team-a-*", "team-a-*", True),
    ("team-a-*", "team-a-x*", True),
    ("team-a-*", "team-*", False),  # wider than allowed
    ("team-a-*", "*", False),
    ("team-a-?", "team-a-b", True),
    ("team-a-?", "team-a-?", True),
    ("team-a-?", "team-a-b*", False),
    ("public/*", "public/data/*", True),
    ("public/*", "pub*", False),
    ("public/*", "public/[x]*", True),  # brackets are not special in S3 keys
    ("a*b", "a*", False),  # unsure: refused
])
def test_glob_containment(allowed: str, wanted: str, covered: bool) -> None:
    assert glob_covers(allowed, wanted) is covered


@pytest.mark.parametrize(("selector", "labels", "selected"), [
    ({}, {}, True),
    ({"matchLabels": {"team": "a"}}, {"team": "a", "x": "y"}, True),
    ({"matchLabels": {"team": "a"}}, {"team": "b"}, False),
    ({"matchExpressions": [{"key": "team", "operator": "In", "values": ["a", "b"]}]}, {"team": "b"}, True),
    ({"matchExpressions": [{"key": "team", "operator": "In", "values": ["a"]}]}, {}, False),
    ({"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["a"]}]}, {}, True),
    ({"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["a"]}]}, {"team": "a"}, False),
    ({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, {"tier": ""}, True),
    ({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, {"tier": "x"}, False),
    ({"matchExpressions": [{"key": "tier", "operator": "Gt", "values": ["1"]}]}, {"tier": "2"}, False),
])
def test_label_selectors(selector: dict[str, Any], labels: dict[str, str], selected: bool) -> None:
    assert selector_matches(selector, labels) is selected


def test_grants_inside_the_allowance_pass() -> None:
    assert verdict({"grants": [{"bucket": "team-a-backups", "access": "readwrite"},
                               {"bucket": "shared-datasets", "prefix": "public/x/", "access": "read"},
                               {"bucket": "team-a-admin", "access": "admin"}]}) == ()


@pytest.mark.parametrize(("grant", "problem"), [
    ({"bucket": "team-b-backups", "access": "read"}, "read on team-b-backups"),
    ({"bucket": "team-a-backups", "access": "admin"}, "admin on team-a-backups"),
    ({"bucket": "shared-datasets", "access": "read"}, "read on shared-datasets"),  # the whole bucket
    ({"bucket": "shared-datasets", "prefix": "private/", "access": "read"}, "shared-datasets/private/*"),
    ({"bucket": "shared-datasets", "prefix": "public/", "access": "readwrite"}, "readwrite"),
])
def test_grants_outside_the_allowance_are_named(grant: dict[str, Any], problem: str) -> None:
    [found] = verdict({"grants": [grant]})
    assert found.startswith("spec.grants[0]") and problem in found


def statement(effect: str = "Allow", actions: tuple[str, ...] = ("s3:GetObject",),
              resources: tuple[str, ...] = ("arn:aws:s3:::team-a-data/*",), **extra: Any) -> dict[str, Any]:
    return {"policy": {"Statement": [{"Effect": effect, "Action": list(actions), "Resource": list(resources),
                                      **extra}]}}


@pytest.mark.parametrize(("spec", "allowed"), [
    (statement(), True),
    (statement(actions=("s3:PutObject",)), True),
    (statement(resources=("arn:aws:s3:::team-b-data/*",)), False),
    (statement(resources=("arn:aws:s3:::*",)), False),
    (statement(resources=("*",)), False),
    (statement(resources=("arn:aws:s3:::team-a-*",)), True),  # inside team-a-*
    (statement(resources=("arn:aws:s3:::team-*",)), False),  # wider than team-a-*
    (statement(actions=("s3:CreateBucket",), resources=("arn:aws:s3:::team-a-new",)), False),
    (statement(actions=("s3:*",), resources=("arn:aws:s3:::team-a-admin", "arn:aws:s3:::team-a-admin/*")), True),
    (statement(actions=("s3:DeleteBucket",), resources=("arn:aws:s3:::team-a-admin",)), True),
    (statement(effect="Deny", actions=("s3:*",), resources=("*",)), True),  # Deny only takes away
    (statement(resources=("arn:aws:s3:::shared-datasets/public/2024/*",)), True),
    (statement(resources=("arn:aws:s3:::shared-datasets/*",)), False),
    (statement(actions=("s3:ListBucket",), resources=("arn:aws:s3:::shared-datasets",)), False),  # lists it all
    (statement(actions=("s3:ListBucket",), resources=("arn:aws:s3:::shared-datasets",),
               Condition={"StringLike": {"s3:prefix": ["public/*"]}}), True),
    (statement(actions=("s3:ListBucket",), resources=("arn:aws:s3:::shared-datasets",),
               Condition={"StringLike": {"s3:prefix": ["*"]}}), False),
    (statement(actions=("s3:GetBucketLocation",), resources=("arn:aws:s3:::shared-datasets",)), True),
])
def test_raw_statements(spec: dict[str, Any], allowed: bool) -> None:
    assert (verdict(spec) == ()) is allowed


def test_raw_policies_need_a_policy_that_allows_them() -> None:
    strict = Allowance(policies=("strict",), buckets=TEAM_A.buckets, roles=TEAM_A.roles, regions=("*",))
    [problem] = verdict(statement(), strict)
    assert "no raw S3 policy is allowed" in problem
    assert verdict(statement(effect="Deny"), strict) == ()


def test_roles_and_regions() -> None:
    assert verdict({"roles": ["objectstore_operator", "administrator"]}) == ("role administrator",)
    assert verdict({}, region="waw") == ("region waw",)
    assert verdict({}, ALLOW_ANY_BUCKET, region="waw") == ()
    assert verdict({"roles": ["backup_operator"]}, ALLOW_ANY_BUCKET) == ("role backup_operator",)


def test_deny_all_allows_nothing() -> None:
    assert set(verdict({"grants": [{"bucket": "any-bucket", "access": "read"}]}, DENY_ALL)) == {
        "spec.grants[0] (read on any-bucket)", "role objectstore_operator", "region gra"}


def test_the_verdict_keeps_what_is_allowed() -> None:
    spec = parse_spec({"grants": [{"bucket": "team-a-x", "access": "read"}, {"bucket": "team-b-x", "access": "read"}],
                       "policy": {"Statement": [
                           {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::*"]},
                           {"Effect": "Deny", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::*"]}]},
                       "roles": ["objectstore_operator", "administrator"]})
    result = check(spec, "gra", TEAM_A)
    assert [g.bucket for g in result.grants] == ["team-a-x"]
    assert result.policy is not None and [s["Effect"] for s in result.policy["Statement"]] == ["Deny"]
    assert result.roles == ("objectstore_operator",)
    assert len(result.problems) == 3


def test_a_namespace_gets_the_union_of_the_policies_that_select_it() -> None:
    index = AccessIndex()
    index.replace(
        policies=[
            {"metadata": {"name": "reads"}, "spec": {"namespaceSelector": {"matchLabels": {"team": "a"}},
                                                      "buckets": [{"name": "data", "maxAccess": "read"}],
                                                      "regions": ["gra"]}},
            {"metadata": {"name": "roles"}, "spec": {"namespaceSelector": {},
                                                      "roles": ["objectstore_operator"]}},
        ],
        namespaces=[{"metadata": {"name": "a", "labels": {"team": "a"}}},
                    {"metadata": {"name": "b", "labels": {"team": "b"}}}])
    a = index.allowance("a")
    assert a.policies == ("reads", "roles")
    assert verdict({"grants": [{"bucket": "data", "access": "read"}]}, a) == ()
    b = index.allowance("b")
    assert b.policies == ("roles",)
    assert verdict({"grants": [{"bucket": "data", "access": "read"}]}, b) == (
        "spec.grants[0] (read on data)", "region gra")
    index.set_policy({"metadata": {"name": "roles"}}, deleted=True)
    assert index.allowance("b") == DENY_ALL
    index.set_namespace({"metadata": {"name": "b", "labels": {"team": "a"}}})  # relabelled
    assert index.allowance("b").policies == ("reads",)
    assert AccessIndex("allow").allowance("b") == ALLOW_ANY_BUCKET


def policy(name: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"namespaceSelector": {}, **spec}}


@pytest.mark.parametrize(("policies", "default", "named"), [
    ([policy("legacy")], True, ()),  # written before OVHProjects: the operator's own project only
    ([policy("listed", projects=["team-a-*"])], False, ("team-a-prod", "team-a-x")),  # listed means only those
    ([policy("both", projects=["team-a-*"], defaultProject=True)], True, ("team-a-prod", "team-a-x")),
    ([policy("none", defaultProject=False)], False, ()),
    ([policy("legacy"), policy("listed", projects=["team-a-?"])], True, ("team-a-x",)),  # the union
    ([], True, ()),  # no policy selects the namespace: default access deny allows no role anyway
])
def test_which_projects_a_namespace_may_use(policies: list[dict[str, Any]], default: bool,
                                            named: tuple[str, ...]) -> None:
    index = AccessIndex()
    index.replace(policies, [{"metadata": {"name": "ns"}}])
    allowance = index.allowance("ns")
    assert allowance.allows_project("") is default
    for name in ("team-a-prod", "team-a-x", "team-b-prod"):
        assert allowance.allows_project(name) is (name in named)
    assert AccessIndex("allow").allowance("ns").allows_project("") is True
    assert AccessIndex("allow").allowance("ns").allows_project("team-a-prod") is False


def test_a_project_the_namespace_may_not_use_allows_nothing_at_all() -> None:
    allowance = Allowance(policies=("p",), buckets=TEAM_A.buckets, roles=TEAM_A.roles, regions=("*",),
                          raw_policy=True, projects=("team-a-*",), default_project=False)
    spec = parse_spec({"projectRef": {"name": "team-b-prod"}, "grants": [{"bucket": "team-a-x", "access": "read"}],
                       "policy": {"Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"],
                                                 "Resource": ["arn:aws:s3:::team-a-x/*"]}]}})
    result = check(spec, "gra", allowance)
    assert result.problems == ("project team-b-prod (spec.projectRef)",)
    assert (result.grants, result.roles, result.policy) == ((), (), {"Statement": []})
    assert verdict({"grants": [{"bucket": "team-a-x", "access": "read"}]}, allowance) == (
        "the operator's own project (no spec.projectRef; name an OVHProject the namespace may use)",)
    assert verdict({"projectRef": {"name": "team-a-prod"}}, allowance) == ()
