"""The controller's rules: which events reconcile, when outcomes look again, fairness, debouncing,
the drift budget, and memory released when a resource goes. A scripted reconcile stands in for the
real one (it is the controller under test here)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest

from ovh_s3_operator.access_policy import AccessIndex
from ovh_s3_operator.activation import ActivationEstimate
from ovh_s3_operator.config import Settings
from ovh_s3_operator.controller import Controller, Key
from ovh_s3_operator.errors import Retry
from ovh_s3_operator.model import FINALIZER, KIND
from ovh_s3_operator.reconcile import GONE, Context, Memory, Outcome
from ovh_s3_operator.secret_writer import ObservedSecret
from ovh_s3_operator_sandbox.harness import until

READY = Outcome(True, "Reconciled", "ok")


class Script:
    """A reconcile that records each call and answers what the test says."""

    def __init__(self) -> None:
        self.calls: list[Key] = []
        self.outcomes: dict[Key, Outcome] = {}
        self.running: set[Key] = set()
        self.overlaps = 0
        self.gate: asyncio.Event | None = None

    async def __call__(self, ctx: Context, namespace: str, name: str, memory: Memory) -> Outcome:
        key = (namespace, name)
        if key in self.running:
            self.overlaps += 1
        self.running.add(key)
        try:
            self.calls.append(key)
            memory.uid = f"uid-{name}"
            if self.gate is not None:
                await self.gate.wait()
            outcome = self.outcomes.get(key, READY)
            if outcome.ready:
                memory.verified_at = ctx.clock()
            return outcome
        finally:
            self.running.discard(key)


def body(name: str, namespace: str = "ns", *, generation: int = 1, **meta: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}", "generation": generation,
                         **meta}, "status": {}}


def settings(**overrides: Any) -> Settings:
    values = {"retry_delay": 10, "conflict_retry_delay": 60, "permanent_retry_delay": 900, "drift_interval": 1800,
              "ovh_requests_per_second": 1.0, "max_concurrent_reconciles": 1, **overrides}
    return Settings(_env_file=None, **values)


@pytest.fixture
async def controller(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Controller, Script]]:
    script = Script()
    values = settings(**getattr(request, "param", {}))
    ctx = Context(ovh=cast(Any, None), kube=cast(Any, None), events=cast(Any, None), settings=values,
                  access=AccessIndex(), cluster_id="c", registry=cast(Any, None), activation=ActivationEstimate(1.0),
                  drift_interval=lambda: 0.0)
    controller = Controller(ctx, reconciler=script)
    ctx.drift_interval = controller.drift_interval
    await controller.start()
    yield controller, script
    await controller.stop()


async def settled(controller: Controller) -> None:
    await asyncio.sleep(0)
    await until(lambda: controller.idle, what="an idle controller")


async def test_only_changes_that_matter_reconcile(controller: tuple[Controller, Script]) -> None:
    ctl, script = controller
    ctl.resource_event(None, body("a"))
    await settled(ctl)
    assert script.calls == [("ns", "a")]
    ctl.resource_event("MODIFIED", {**body("a"), "status": {"userId": 1}})  # status only: the operator's own write
    await settled(ctl)
    assert len(script.calls) == 1
    ctl.resource_event("MODIFIED", body("a", finalizers=[FINALIZER]))  # the operator added its finalizer
    await settled(ctl)
    assert len(script.calls) == 1
    for changed in (body("a", generation=2, finalizers=[FINALIZER]),
                    body("a", generation=2, annotations={"x": "y"}, finalizers=[FINALIZER]),
                    body("a", generation=2, annotations={"x": "y"}),  # someone removed the finalizer
                    body("a", generation=2, annotations={"x": "y"}, deletionTimestamp="t")):
        ctl.resource_event("MODIFIED", changed)
        await settled(ctl)
    assert len(script.calls) == 5


async def test_outcomes_decide_when_to_look_again(controller: tuple[Controller, Script]) -> None:
    ctl, script = controller
    cases = {
        "ready": (READY, 1800 * 0.999, 1800),
        "waiting": (Outcome(False, "UserNotReady", "m", after=3.0), 2.9, 3.0),
        "soon": (Outcome(False, "OVHUnavailable", "m", retry=Retry.SOON), 9.0, 11.0),
        "conflict": (Outcome(False, "SecretConflict", "m", retry=Retry.CONFLICT), 54.0, 66.0),
        "later": (Outcome(False, "OVHRejected", "m", retry=Retry.LATER), 810.0, 990.0),
    }
    for name, (outcome, _, _) in cases.items():
        script.outcomes["ns", name] = outcome
        ctl.resource_event(None, body(name))
    script.outcomes["ns", "invalid"] = Outcome(False, "InvalidSpec", "m", retry=Retry.ON_CHANGE)
    ctl.resource_event(None, body("invalid"))
    await settled(ctl)
    for name, (_, low, high) in cases.items():
        due = ctl.due(("ns", name))
        assert due is not None and low <= due <= high, (name, due)
    assert ctl.due(("ns", "invalid")) is None  # only a change helps
    ctl.resource_event("MODIFIED", body("invalid", generation=2))
    await settled(ctl)
    assert script.calls.count(("ns", "invalid")) == 2


@pytest.mark.parametrize("controller", [{"drift_interval": 0}], indirect=True)
async def test_no_drift_checks_when_disabled(controller: tuple[Controller, Script]) -> None:
    ctl, _ = controller
    ctl.resource_event(None, body("a"))
    await settled(ctl)
    assert ctl.due(("ns", "a")) is None


async def test_a_deleted_resource_is_forgotten(controller: tuple[Controller, Script]) -> None:
    ctl, script = controller
    ctl.resource_event(None, body("a"))
    await settled(ctl)
    assert ctl.due(("ns", "a")) is not None and ("ns", "a") in ctl._memory
    ctl.resource_event("DELETED", body("a"))  # e.g. its finalizer was removed by hand
    assert ctl.due(("ns", "a")) is None
    assert ("ns", "a") not in ctl._memory and ctl.keys() == []
    script.outcomes["ns", "b"] = GONE  # a reconcile that finds it gone forgets it too
    ctl.resource_event(None, body("b"))
    await settled(ctl)
    assert ("ns", "b") not in ctl._memory and ctl.due(("ns", "b")) is None


async def test_a_resource_is_never_reconciled_twice_at_once(controller: tuple[Controller, Script]) -> None:
    ctl, script = controller
    ctl.settings = settings(max_concurrent_reconciles=4)
    script.gate = asyncio.Event()
    ctl.resource_event(None, body("a"))
    await until(lambda: script.running, what="the first reconcile")
    for generation in (2, 3, 4):
        ctl.resource_event("MODIFIED", body("a", generation=generation))
    script.gate.set()
    await settled(ctl)
    assert script.overlaps == 0
    assert script.calls == [("ns", "a")] * 2  # the events during the first run made one more run


async def test_namespaces_take_turns(controller: tuple[Controller, Script]) -> None:
    ctl, script = controller
    script.gate = asyncio.Event()
    ctl.resource_event(None, body("first", "busy"))
    await until(lambda: script.running, what="the first reconcile")
    for i in range(5):
        ctl.resource_event(None, body(f"b{i}", "busy"))
    ctl.resource_event(None, body("q0", "quiet"))
    ctl.resource_event(None, body("q1", "quiet"))
    script.gate.set()
    await settled(ctl)
    order = [name for _, name in script.calls]
    assert order[:5] == ["first", "b0", "q0", "b1", "q1"]


async def test_secret_edits_wake_the_owner_debounced(controller: tuple[Controller, Script]) -> None:
    ctl, script = controller
    ctl.resource_event(None, body("a"))
    await settled(ctl)
    memory = ctl._memory["ns", "a"]
    memory.secret = ObservedSecret.from_body({"metadata": {"uid": "s", "resourceVersion": "10"}})

    def secret(rv: str, *, controller_ref: bool = True, uid: str = "uid-a") -> dict[str, Any]:
        ref = {"kind": KIND, "name": "a", "uid": uid, "controller": controller_ref}
        return {"metadata": {"name": "a-s3", "namespace": "ns", "resourceVersion": rv, "ownerReferences": [ref]}}

    ctl.secret_event(None, secret("9"))  # listed when the watch started
    ctl.secret_event("MODIFIED", secret("10"))  # the operator's own write
    ctl.secret_event("MODIFIED", secret("11", controller_ref=False))
    ctl.secret_event("MODIFIED", secret("11", uid="uid-someone-else"))
    await settled(ctl)
    assert len(script.calls) == 1
    ctl.secret_event("MODIFIED", secret("11"))  # someone else's edit: restored at once
    await settled(ctl)
    assert len(script.calls) == 2
    ctl._secret_wakes["ns", "a"].last = ctl._clock()  # the restore, as if it had just run (however slow settling was)
    ctl.secret_event("MODIFIED", secret("12"))  # edited again: restored one second after the last restore
    assert ctl.due(("ns", "a")) == pytest.approx(1, abs=0.1)
    ctl.secret_event("MODIFIED", secret("13"))  # more edits before that restore: covered by it
    ctl.secret_event("DELETED", secret("13"))
    assert ctl.due(("ns", "a")) == pytest.approx(1, abs=0.1)
    wakes = ctl._secret_wakes["ns", "a"]
    delays = []
    for _ in range(4):  # each later restore waits twice as long after the one before
        wakes.last = ctl._clock()  # as if the scheduled restore had just run
        ctl._due.pop(("ns", "a"), None)
        ctl.secret_event("MODIFIED", secret("14"))
        delays.append(round(ctl.due(("ns", "a")) or 0.0))
    assert delays == [2, 4, 8, 16]


async def test_drift_checks_stay_within_their_share_of_the_ovh_rate(
        controller: tuple[Controller, Script], caplog: pytest.LogCaptureFixture) -> None:
    ctl, _ = controller
    for i in range(3):
        ctl.resource_event(None, body(f"r{i}"))
    await settled(ctl)
    assert ctl.drift_interval() == 1800  # 3 checks of 2 calls fit in 1800 s at 0.25 call/s
    ctl._ready_keys |= {("ns", f"x{i}") for i in range(1000)}
    with caplog.at_level(logging.WARNING):
        assert ctl.drift_interval() == pytest.approx(1003 * 2 / 0.25)
    assert "each resource is checked every 8024s instead of every 1800s" in caplog.text


@pytest.mark.parametrize("controller", [{"drift_interval": 0.05, "ovh_requests_per_second": 1000.0}], indirect=True)
async def test_checks_due_together_are_spread_over_the_budget(controller: tuple[Controller, Script]) -> None:
    ctl, script = controller
    ctl._check_spacing = lambda: 0.1  # type: ignore[method-assign]  # a budget of ten checks a second
    for i in range(4):
        ctl.resource_event(None, body(f"r{i}"))
    await settled(ctl)
    script.calls.clear()
    started = asyncio.get_running_loop().time()
    await until(lambda: len(script.calls) >= 4, what="four checks")
    assert asyncio.get_running_loop().time() - started >= 0.25  # not four at once: one every 0.1 s


async def test_a_crashing_reconcile_is_retried(controller: tuple[Controller, Script],
                                                caplog: pytest.LogCaptureFixture) -> None:
    ctl, _ = controller

    async def boom(ctx: Context, namespace: str, name: str, memory: Memory) -> Outcome:
        raise RuntimeError("a bug")

    ctl._reconcile = boom
    ctl.resource_event(None, body("a"))
    await settled(ctl)
    due = ctl.due(("ns", "a"))
    assert due is not None and due <= 11
    assert "Reconcile failed unexpectedly" in caplog.text
