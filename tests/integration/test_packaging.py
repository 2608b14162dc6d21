"""What the production install contains: the operator and its CRDs, no sandbox code."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def build_wheel(source: Path, out: Path) -> zipfile.ZipFile:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(source)], check=True, timeout=120)
    [wheel] = out.glob("*.whl")
    return zipfile.ZipFile(wheel)


def test_the_operator_wheel_ships_the_crds_and_no_sandbox(tmp_path: Path) -> None:
    wheel = build_wheel(ROOT, tmp_path)
    names = wheel.namelist()
    packages = {name.split("/")[0] for name in names if not name.endswith(".dist-info/") and "/" in name}
    assert packages == {"ovh_s3_operator", "ovh_s3_operator-0.1.0.dist-info"}
    assert not [name for name in names if "sandbox" in name]
    shipped = yaml.safe_load(wheel.read("ovh_s3_operator/crds/ovhobjectstorageusers.yaml"))
    assert shipped == yaml.safe_load((ROOT / "crds" / "ovhobjectstorageusers.yaml").read_text())
    metadata = wheel.read("ovh_s3_operator-0.1.0.dist-info/METADATA").decode()
    assert "Requires-Dist: kmock" not in metadata and "aiohttp" not in metadata


def test_the_sandbox_wheel_ships_the_examples(tmp_path: Path) -> None:
    wheel = build_wheel(ROOT / "sandbox", tmp_path)
    folder = "ovh_s3_operator_sandbox/examples/"
    examples = sorted(name.removeprefix(folder) for name in wheel.namelist() if name.startswith(folder))
    assert examples == sorted(p.name for p in (ROOT / "examples").glob("*.yaml"))


def test_the_sandbox_wheel_ships_the_operator_rbac(tmp_path: Path) -> None:
    wheel = build_wheel(ROOT / "sandbox", tmp_path)
    for name in ("namespace.yaml", "rbac.yaml"):
        shipped = wheel.read(f"ovh_s3_operator_sandbox/deploy/{name}").decode()
        assert shipped == (ROOT / "deploy" / "kustomize" / "base" / name).read_text()
