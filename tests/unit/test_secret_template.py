"""Tenant templates: what they may do, what they may not, the bounds, and errors that never quote a value."""

from typing import Any

import pytest

from ovh_s3_operator.secret_template import (
    LOOP_ITEMS,
    RENDERED_LENGTH,
    TemplateProblem,
    compile_template,
    render,
)

from ..support import Redacted

SECRET = Redacted("Zq8SECRETxx0secretKEYvalue000042")
VARIABLES: dict[str, Any] = {
    "accessKeyId": "0f2e" * 8, "secretAccessKey": SECRET, "endpoint": "https://s3.gra.io.cloud.ovh.net",
    "region": "gra", "buckets": ["team-a-backups", "team-a-config"], "userId": 100001, "username": "user-AbCd",
    "namespace": "team-a", "name": "backup-writer",
}


def rendered(source: str) -> str:
    return render(compile_template(source), VARIABLES)


def problem(source: str) -> TemplateProblem:
    with pytest.raises(TemplateProblem) as caught:
        rendered(source)
    return caught.value


@pytest.mark.parametrize(("source", "expected"), [
    ("key={{ accessKeyId }}\n", f"key={'0f2e' * 8}\n"),
    ("{% for b in buckets %}\n[{{ b }}]\nn={{ loop.index }}\n{% endfor %}\n",
     "[team-a-backups]\nn=1\n[team-a-config]\nn=2\n"),
    ("{{ endpoint|replace('https://', '') }}", "s3.gra.io.cloud.ovh.net"),
    ("{{ buckets|map('upper')|join(',') }} {{ buckets|length }} {{ buckets|first }}",
     "TEAM-A-BACKUPS,TEAM-A-CONFIG 2 team-a-backups"),
    ("{{ {'user': username, 'id': userId}|tojson }}", '{"id": 100001, "user": "user-AbCd"}'),
    ("{% if region == 'gra' %}eu{% else %}other{% endif %} {{ namespace ~ '/' ~ name }}", "eu team-a/backup-writer"),
    ("{{ 'x' * 3 }}{{ 2 ** 10 }}{{ 7 % 4 }}", "xxx10243"),
], ids=["variable", "loop", "replace", "filters", "tojson", "if-and-concat", "bounded-operators"])
def test_what_templates_can_do(source: str, expected: str) -> None:
    assert rendered(source) == expected


@pytest.mark.parametrize(("source", "message"), [
    ("{{ ''.__class__ }}", "uses an attribute templates may not use"),
    ("{{ accessKeyId.upper() }}", "calls are not available"),
    ("{{ range(10)|list }}", "calls are not available"),
    ("{% set x = accessKeyId %}", "{% set %} is not available"),
    ("{% with x = 1 %}{% endwith %}", "{% with %} is not available"),
    ("{% macro m() %}{% endmacro %}", "macros are not available"),
    ("{% filter upper %}x{% endfilter %}", "{% filter %} blocks are not available"),
    ("{% include 'other' %}", "{% include %} is not available"),
    ("{% extends 'base' %}", "{% extends %} is not available"),
    ("{% for b in buckets recursive %}{% endfor %}", "recursive loops are not available"),
    ("{% for a in buckets %}{% for b in buckets %}{% endfor %}{% endfor %}", "loops cannot be nested"),
    ("{{ name|center(80) }}", "the filter 'center' is not available"),
    ("{{ secret }}", "unknown variable 'secret'; the variables are accessKeyId"),
    ("{{ loop.index }}", "unknown variable 'loop'"),
], ids=["dunder", "method-call", "range", "set", "with", "macro", "filter-block", "include", "extends", "recursive",
        "nested-loops", "unknown-filter", "unknown-variable", "loop-outside-a-loop"])
def test_what_templates_cannot_do(source: str, message: str) -> None:
    assert message in problem(source).text


@pytest.mark.parametrize(("source", "message"), [
    ("{{ 'x' * 100000000 }}", "a repeated value would be longer than"),
    ("{{ buckets * 100000 }}", "a repeated value would be longer than"),
    ("{{ 2 ** 100000 }}", "a power would be too large a number"),
    ("{{ '%0999999d' % 1 }}", "% does not format text"),
    ("{{ (buckets * 3)|join(secretAccessKey * 1000) }}", "join's result would be longer than"),
    ("{{ secretAccessKey|replace('', secretAccessKey * 100) }}", "replace's result would be longer than"),
    ("{% for c in (secretAccessKey * 100)|list %}{% endfor %}", f"a loop may run over at most {LOOP_ITEMS} items"),
    ("{% for c in buckets %}{{ c * 2000 }}{% endfor %}", f"renders to more than {RENDERED_LENGTH} characters"),
    ("{{ 'x' * 30000 }}{{ 'y' * 30000 }}", f"renders to more than {RENDERED_LENGTH} characters"),
], ids=["repeat-text", "repeat-list", "power", "format", "join", "replace", "loop-items", "loop-output", "output"])
def test_nothing_grows_without_bound(source: str, message: str) -> None:
    assert message in problem(source).text


BIG = '"a" * 32768'
LOOP = "{% for b in buckets * 500 %}"  # 1000 items


@pytest.mark.parametrize("source", [
    LOOP + "{{ (" + BIG + ')|map("upper")|join|length }}{% endfor %}',
    LOOP + "{{ (" + " ~ ".join(['"a" * 1600'] * 20) + ")|length }}{% endfor %}",
    LOOP + "{{ (" + BIG + ")|unique|list|length }}{% endfor %}",
    "{% for s in [" + BIG + "] * 30 %}" + '{% if "ab" in s %}{% endif %}' * 80 + "{% endfor %}",
    "{% for s in [" + BIG + "] * 30 %}" + "{% if s < s %}{% endif %}" * 80 + "{% endfor %}",
    LOOP + "{% if name[0] %}{% endif %}" * 80 + "{% endfor %}",
    "{% for s in ['" + "a" * 1000 + "'] * 1000 %}{% if (" + " ~ ".join(["s"] * 30) + ") %}{% endif %}{% endfor %}",
    "{{ ([" + BIG + "] * 32768)|sort|length }}",
    "{{ ([" + BIG + "] * 32768)|tojson|length }}",
    "{{ (([" + BIG + "] * 32768) ~ '')|length }}",
    "{% for i in [[" + BIG + "]] * 1000 %}{{ [i, i, i, i, i, i, i, i]|tojson|length }}{% endfor %}",
], ids=["map", "concat", "unique", "in", "compare", "lookups", "loop-variable", "sort-long-texts", "tojson",
        "concat-a-list", "nested-lists"])
def test_the_work_is_bounded(source: str) -> None:
    """Templates whose values all stay within bounds but whose rendering would take seconds of CPU."""
    assert len(source) <= 8192
    assert "takes too much work to render" in problem(source).text


def test_a_long_loop_of_ordinary_work_renders() -> None:
    source = ("{% for b in buckets * 250 %}{% if b != 'x' %}{{ (endpoint ~ '/' ~ b)|upper|length }}{% endif %}"
              "{% endfor %}")
    assert rendered(source) == "".join(str(len(f"{VARIABLES['endpoint']}/{b}")) for b in VARIABLES["buckets"]) * 250


@pytest.mark.parametrize("source", [
    "{{ {}[secretAccessKey] }}",  # Jinja: "'dict object' has no attribute '<the secret>'"
    "{{ buckets[secretAccessKey] }}",
    "{{ accessKeyId[('_' ~ secretAccessKey)] }}",  # Jinja: "access to attribute '_<the secret>' … is unsafe"
    "{{ secretAccessKey|int + secretAccessKey }}",
    "{{ (secretAccessKey|reverse|join)[secretAccessKey] }}",
])
def test_errors_never_quote_a_value(source: str) -> None:
    found = problem(source)
    assert found.line == 1
    for shown in (found.text, found.describe("config"), str(found)):
        assert SECRET not in shown and SECRET[::-1] not in shown and SECRET[:8] not in shown


def test_errors_name_the_entry_and_the_line() -> None:
    assert problem("[default]\nregion = {{ region }}\nkey = {{ buckets[7] }}\n").describe("config") == (
        "spec.secret.template.config: line 3: uses something undefined: a misspelt attribute, a missing key or an "
        "index past the end of a list")
    syntax = problem("line one\n{% if region %}\nno end\n")
    assert syntax.line == 3 and syntax.text.startswith("Unexpected end of template. Jinja was looking for")
    assert problem("a\n\n{{ region ~ nope }}").line == 3
    assert "nested too deeply" in problem("{{" + "(" * 5000 + "1" + ")" * 5000 + "}}").text
    for deep in ("{{ name" + "|d" * 1500 + " }}", "{{ name" + "|d" * 250 + " }}",
                 "{{ " + " + ".join(["userId"] * 200) + " }}",
                 "{{ " + " * ".join(["(2 ** 2000)"] * 150) + " }}"):  # fine to parse; compiling would take seconds
        assert "nested too deeply" in problem(deep).text
    assert "at most 1000; split it into entries" in problem("{{ name|d|d|d }}" * 300).text
    assert "a number would be too large" in problem("{{ (2 ** 2000) * (2 ** 2000) * (2 ** 2000) }}").text


def test_a_template_keeps_its_last_newline_and_blocks_their_lines() -> None:
    assert rendered("{% if true %}\na\n{% endif %}\nb\n") == "a\nb\n"
