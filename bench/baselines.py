"""The baselines the operator is compared with: the seed's handler and OSAM's, against the same sandbox.

The seed (``OVHApiHandler`` of rs-server's OSAM) provisions one user at a time: ``POST /user``, then
``GET`` the user every 2 seconds until it is ``ok`` (``create_user(..., poll_interval=2)``), apply
the policy, create the S3 key; the caller writes the Secret. OSAM runs that handler in 5 threads.
Both use python-ovh directly (no rate limiter, no retries) and the kubernetes client for the Secret.
"""

from __future__ import annotations

import base64
import concurrent.futures
import json
import time

import kubernetes
import ovh

from ovh_s3_operator_sandbox.stack import SandboxStack

POLL_INTERVAL = 2.0


def provision(client: ovh.Client, project: str, core: kubernetes.client.CoreV1Api, index: int) -> None:
    user = client.post(f"{project}/user", description=f"baseline {index}", roles=["objectstore_operator"])
    deadline = time.monotonic() + 60
    while (user := client.get(f"{project}/user/{user['id']}"))["status"] != "ok":
        if time.monotonic() > deadline:
            raise TimeoutError(f"user {user['id']} not ok after 60s")
        time.sleep(POLL_INTERVAL)
    policy = {"Statement": [{"Sid": "RW", "Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
                             "Resource": [f"arn:aws:s3:::bench-{index}", f"arn:aws:s3:::bench-{index}/*"]}]}
    client.post(f"{project}/user/{user['id']}/policy", policy=json.dumps(policy))
    credential = client.post(f"{project}/user/{user['id']}/s3Credentials")
    data = {"AWS_ACCESS_KEY_ID": credential["access"], "AWS_SECRET_ACCESS_KEY": credential["secret"]}
    core.create_namespaced_secret("default", {
        "metadata": {"name": f"baseline-{index}"},
        "data": {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}})


def run(stack: SandboxStack, n: int, threads: int) -> float:
    """Seconds to provision ``n`` users with ``threads`` threads."""
    project = f"/cloud/project/{stack.ovh.service_name}"
    api = kubernetes.config.new_client_from_config(config_file=str(stack.kubeconfig))
    core = kubernetes.client.CoreV1Api(api)

    def one(index: int) -> None:
        provision(stack.ovh_client(), project, core, index)

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(n)))
    return time.monotonic() - started
