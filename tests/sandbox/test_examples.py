"""Every example in examples/ is what the CRDs and Kubernetes accept, applied to the emulator."""

from __future__ import annotations

import pytest
import yaml

from ovh_s3_operator.manifests import crd_documents
from ovh_s3_operator_sandbox.kube.model import ApiError
from ovh_s3_operator_sandbox.kube.server import KubeEmulator
from ovh_s3_operator_sandbox.stack import examples


@pytest.fixture
def emulator() -> KubeEmulator:
    kube = KubeEmulator()
    for crd in crd_documents():
        kube.install_crd(crd)
    for namespace in ("default", "ovh-s3-operator", "platform-backups"):
        kube.create_namespace(namespace)
    return kube


def test_every_example_is_accepted(emulator: KubeEmulator) -> None:
    kinds = []
    for path in examples():
        for document in yaml.safe_load_all(path.read_text()):
            emulator.apply(document)
            kinds.append(document["kind"])
    assert {"OVHObjectStorageUser", "OVHObjectStorageAccessPolicy", "OVHProject", "Secret"} <= set(kinds)


def test_the_emulator_would_refuse_a_broken_example(emulator: KubeEmulator) -> None:
    [project] = [d for path in examples() for d in yaml.safe_load_all(path.read_text()) if d["kind"] == "OVHProject"]
    project["spec"]["endpoint"] = "http://proxy.example/1.0"  # credentials in clear, off this host
    with pytest.raises(ApiError, match=r"spec\.endpoint"):
        emulator.apply(project)
