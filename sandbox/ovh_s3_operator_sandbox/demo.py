"""``ovh-s3-operator demo``: the whole lifecycle on the sandbox, narrated as it happens.

Starts the sandbox and the operator, applies ``examples/``, shows Ready, the Secret (secret masked),
the OVH user and its policy, changes the grants and shows the policy re-applied, deletes everything
and shows the OVH user gone. Exits 0 only if every step happened.
"""

from __future__ import annotations

import argparse
import functools
import json
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import kubernetes
import ovh
import yaml
from kubernetes.client.exceptions import ApiException

from ovh_s3_operator.access_policy import POLICY_PLURAL
from ovh_s3_operator.model import GROUP, KIND, VERSION

from .background import BackgroundLoop
from .clients import SandboxClients
from .stack import OperatorProcess, SandboxStack, examples, wait_for

TIMEOUT = 60.0


class StepFailed(Exception):
    pass


def say(text: str = "") -> None:
    print(text, flush=True)


@contextmanager
def step(title: str) -> Iterator[None]:
    say(f"\n==> {title}")
    try:
        yield
    except (TimeoutError, ApiException, ovh.exceptions.APIError) as exc:
        raise StepFailed(f"{title}: {exc}") from exc


class Demo(SandboxClients):
    def show_policy(self, user_id: int) -> dict[str, Any]:
        policy: dict[str, Any] = json.loads(self.ovh.get(f"{self.project}/user/{user_id}/policy")["policy"])
        for statement in policy["Statement"]:
            resources = ", ".join(statement["Resource"])
            actions = ", ".join(a.removeprefix("s3:") for a in statement["Action"])
            say(f"      {statement.get('Sid', '-'):<16} {statement['Effect']:<5} {actions}")
            say(f"      {'':<16} on {resources}")
        return policy

    def apply_examples(self) -> list[tuple[str, str]]:
        applied = []
        for path in examples():
            for body in yaml.safe_load_all(path.read_text()):
                if body.get("kind") != KIND or body["spec"].get("projectRef"):
                    continue  # the access policies are the sandbox's; other OVH projects are not
                if "userId" in body["spec"]:
                    say(f"    skipped {path.name}: it adopts an OVH user that exists in a real project")
                    continue
                namespace = body["metadata"].get("namespace", "default")
                self.create_body(body)
                applied.append((namespace, body["metadata"]["name"]))
                say(f"    applied {path.name}: {namespace}/{body['metadata']['name']}")
        if not applied:
            raise StepFailed("no example resources found")
        return applied

    def show_resource(self, namespace: str, name: str, started: float) -> dict[str, Any]:
        obj = self.wait_ready(name, namespace=namespace, generation=1, timeout=TIMEOUT)
        status = obj["status"]
        say(f"    {namespace}/{name}: Ready after {time.monotonic() - started:.1f}s, "
            f"OVH user {status['userId']} ({status['username']}), Secret {status['secretName']}")
        values = self.secret_values(status["secretName"], namespace)
        if not values:
            raise StepFailed(f"Secret {status['secretName']} is missing")
        sandbox_user = self.stack.ovh.project.user(status["userId"]) or {}
        secrets = [c["secret"] for c in sandbox_user.get("credentials", [])]
        for key in sorted(values):
            value = values[key]
            if any(secret in value for secret in secrets):  # the secret itself, or a file that holds it
                say(f"      {key}=" + "•" * 12 + f" ({len(value)} characters, masked)")
            else:
                say(f"      {key}=" + value.rstrip("\n").replace("\n", "\n" + " " * (len(key) + 7)))
        if len(secrets) != 1 or secrets[0] not in values.values():
            raise StepFailed(f"the Secret of {name} does not hold the key OVH issued")
        say("      (the secret matches the key the OVH sandbox issued for this user)")
        user = self.ovh.get(f"{self.project}/user/{status['userId']}")
        say(f"    OVH says: user {user['id']} {user['username']} status={user['status']} "
            f"roles={[r['name'] for r in user['roles']]}")
        say(f"      description: {user['description']}")
        say("    S3 policy in OVH:")
        self.show_policy(status["userId"])
        return obj

    def show_access(self) -> None:
        listing = cast(dict[str, Any], self.custom.list_cluster_custom_object(GROUP, VERSION, POLICY_PLURAL))
        for policy in listing["items"]:
            spec = policy["spec"]
            buckets = ", ".join(f"{b['name']} (up to {b['maxAccess']})" for b in spec.get("buckets", []))
            say(f"    {policy['metadata']['name']}: namespaces {json.dumps(spec['namespaceSelector'])} may use "
                f"buckets {buckets}, roles {', '.join(spec.get('roles', []))}")

    def refuse_other_namespace(self) -> None:
        self.core.create_namespace(kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(
            name="team-b")))
        self.create("greedy", {"grants": [{"bucket": "team-a-backups", "access": "admin"}]}, "team-b")
        say("    applied team-b/greedy: admin on bucket team-a-backups, from a namespace no policy selects")
        obj = self.wait_condition("greedy", "False", "AccessDenied", namespace="team-b", timeout=TIMEOUT)
        say(f"    team-b/greedy: Ready=False AccessDenied: {self.ready(obj)['message']}")  # type: ignore[index]
        if obj["status"].get("userId") or "finalizers" in obj["metadata"]:
            raise StepFailed("a refused resource got an OVH user")
        say("    no OVH user was created for it")
        self.delete("greedy", "team-b")
        self.wait_gone("greedy", "team-b", TIMEOUT)

    def change_grants(self, namespace: str, name: str, before: dict[str, Any]) -> None:
        grants = [*before["spec"].get("grants", []), {"bucket": "team-a-restore-tests", "access": "read"}]
        say(f"    adding a read grant on bucket team-a-restore-tests to {namespace}/{name}")
        self.patch_spec(name, {"grants": grants}, namespace)
        after = self.wait_ready(name, namespace=namespace, generation=before["metadata"]["generation"] + 1,
                                timeout=TIMEOUT)
        say(f"    Ready again for generation {after['metadata']['generation']}; S3 policy in OVH now:")
        policy = self.show_policy(after["status"]["userId"])
        if not any("arn:aws:s3:::team-a-restore-tests" in s["Resource"] for s in policy["Statement"]):
            raise StepFailed("the new grant is not in the OVH policy")
        if (after["status"]["userId"], after["status"]["accessKeyId"]) != (
                before["status"]["userId"], before["status"]["accessKeyId"]):
            raise StepFailed("changing grants replaced the user or the key")
        say(f"    same OVH user ({after['status']['userId']}), same access key: only the policy was re-applied")

    def secret_gone(self, name: str, namespace: str) -> bool:
        return self.secret_values(name, namespace) is None

    def delete_all(self, resources: list[tuple[str, str, dict[str, Any]]]) -> None:
        for namespace, name, _ in resources:
            self.delete(name, namespace)
            say(f"    deleted {namespace}/{name}")
        for namespace, name, obj in resources:
            self.wait_gone(name, namespace, TIMEOUT)
            user_id, secret_name = obj["status"]["userId"], obj["status"]["secretName"]
            try:
                self.ovh.get(f"{self.project}/user/{user_id}")
            except ovh.exceptions.ResourceNotFoundError:
                say(f"    {namespace}/{name}: finalizer released; OVH answers 404 for user {user_id}")
            else:
                raise StepFailed(f"OVH user {user_id} still exists")
            try:  # the garbage collector deletes it shortly after its owner
                wait_for(functools.partial(self.secret_gone, secret_name, namespace), TIMEOUT,
                         what=f"Secret {secret_name} to be collected")
            except TimeoutError:
                raise StepFailed(f"Secret {secret_name} still exists") from None
            say(f"    Secret {secret_name} is gone with its owner")


def _story(stack: SandboxStack, operator_log: Path) -> None:
    demo = Demo(stack)
    with step("The access policy: what namespaces may ask for (kubectl get osap)"):
        demo.show_access()
    with step("Applying the example resources"):
        started = time.monotonic()
        applied = demo.apply_examples()
    with step("Waiting for the operator: Ready, the Secret, the OVH user and its policy"):
        ready = [(ns, name, demo.show_resource(ns, name, started)) for ns, name in applied]
    with step("Asking for another team's bucket from a namespace no policy selects"):
        demo.refuse_other_namespace()
    with step("Changing the grants"):
        demo.change_grants(*ready[0])
        ready[0] = (ready[0][0], ready[0][1], demo.get(ready[0][1], ready[0][0]) or ready[0][2])
    with step("Deleting the resources"):
        demo.delete_all(ready)
    say("\nDemo complete: every step happened.")


def run_demo(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="ovh-s3-demo-") as scratch:
        state_dir = Path(args.state_dir or scratch).resolve()
        stack = SandboxStack(state_dir, ovh_latency=0.02, ovh_activation=1.0, ovh_deletion=0.5)
        with BackgroundLoop() as loop:
            say("==> Starting the sandbox: Kubernetes API emulator and OVH API sandbox on 127.0.0.1")
            loop.run(stack.start())
            say(f"    Kubernetes API {stack.kube.url}  (kubeconfig: {stack.kubeconfig})")
            say(f"    OVH API        {stack.ovh.url}  (project {stack.ovh.service_name})")
            operator_log = state_dir / "operator.log"
            kept = "" if args.state_dir else "; pass --state-dir DIR to keep it"
            with operator_log.open("wb") as log:
                say(f"\n==> Starting the operator: ovh-s3-operator run (log: {operator_log}{kept})")
                operator = OperatorProcess(stack.operator_env({"OVH_S3_OPERATOR_USER_POLL_INTERVAL": "0.5"}),
                                           log).start()
                try:
                    _story(stack, operator_log)
                    return 0
                except StepFailed as failure:
                    say(f"\nDEMO FAILED: {failure}")
                    say("--- last lines of the operator log ---")
                    say("\n".join(operator_log.read_text(errors="replace").splitlines()[-30:]))
                    return 1
                finally:
                    operator.stop()
                    loop.run(stack.stop())
