"""Kubernetes API faults: conflicts and 5xx on Secret and status writes, dropped watch streams."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from ovh_s3_operator.sandbox.stack import wait_for

from .conftest import World

pytestmark = pytest.mark.integration

GRANTS = {"grants": [{"bucket": "kube-fault-bucket", "access": "read"}]}


@pytest.mark.parametrize("fault", [
    {"method": "PATCH", "plural": "ovhobjectstorageusers", "subresource": "status", "status": 409},
    {"method": "PATCH", "plural": "ovhobjectstorageusers", "subresource": "status", "status": 500},
    {"method": "POST", "plural": "secrets", "status": 500},
    {"method": "POST", "plural": "secrets", "status": 409},
    {"method": "GET", "plural": "secrets", "status": 503},
    {"method": "PATCH", "plural": "ovhobjectstorageusers", "subresource": None, "status": 500},
], ids=["status-409", "status-500", "secret-create-500", "secret-create-409", "secret-read-503", "cr-patch-500"])
def test_write_faults_converge(world: World, fault: dict[str, Any]) -> None:
    world.start_operator()
    injected = world.stack.kube.add_fault(times=3, **fault)
    world.create("kube-faults", GRANTS)
    world.assert_consistent(["kube-faults"])
    assert injected.hits == 3


def test_secret_patch_faults_while_restoring(world: World) -> None:
    world.start_operator()
    world.create("kube-faults", GRANTS)
    world.wait_ready("kube-faults")
    original = world.secret_values("kube-faults-s3")
    injected = world.stack.kube.add_fault(method="PATCH", plural="secrets", status=500, times=2)
    edited = world.secret("kube-faults-s3")
    assert edited is not None
    edited["data"]["AWS_REGION"] = "eHg="
    world.core.replace_namespaced_secret("kube-faults-s3", world.namespace, edited)  # PUT: not faulted
    world.wait_ready("kube-faults")
    wait_for(lambda: world.secret_values("kube-faults-s3") == original, 30, what="the Secret to be restored")
    assert injected.hits == 2


def test_dropped_watches_do_not_lose_events(world: World) -> None:
    world.start_operator()
    stop = threading.Event()

    def keep_dropping() -> None:
        while not stop.wait(0.3):
            world.stack.kube.drop_watches()

    dropper = threading.Thread(target=keep_dropping, daemon=True)
    dropper.start()
    try:
        names = [f"w{i}" for i in range(4)]
        for name in names:
            world.create(name, GRANTS)
            time.sleep(0.2)
        world.assert_consistent(names)
        world.patch_spec("w0", {"grants": [{"bucket": "kube-fault-bucket", "access": "readwrite"}]})
        world.wait_ready("w0", generation=2)
        world.delete("w1")
        world.assert_consistent(["w0", "w2", "w3"], gone=["w1"])
    finally:
        stop.set()
        dropper.join()
