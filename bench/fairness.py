"""How much one namespace editing its Secrets in a loop delays another namespace's new resource.

Runs ``ovh-s3-operator run`` (this environment's, or another interpreter's with ``--python``, e.g. a
venv with an older version installed) against the sandbox over HTTP, twice: a new resource in
namespace ``quiet`` alone, then the same while ``--noisy`` resources in namespace ``noisy`` have
their Secrets rewritten in a loop. Prints both times to Ready and their ratio, as a table and JSON.

    python bench/fairness.py [--python PATH] [--noisy 3] [--ovh-latency 0.05] [--rate 1] [--burst N]
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from ovh_s3_operator_sandbox.background import BackgroundLoop
from ovh_s3_operator_sandbox.clients import SandboxClients
from ovh_s3_operator_sandbox.policies import ALLOW_EVERYTHING
from ovh_s3_operator_sandbox.stack import OperatorProcess, SandboxStack

GRANTS = {"grants": [{"bucket": "bench-bucket", "access": "read"}]}


def time_to_ready(clients: SandboxClients, name: str, namespace: str) -> float:
    started = time.monotonic()
    clients.create(name, GRANTS, namespace)
    clients.wait_ready(name, namespace=namespace, timeout=600)
    return time.monotonic() - started


def edit_in_a_loop(clients: SandboxClients, names: list[str], stop: threading.Event) -> int:
    edits = 0
    while not stop.is_set():
        for name in names:
            value = base64.b64encode(f"edit-{edits}".encode()).decode()
            clients.core.patch_namespaced_secret(f"{name}-s3", "noisy", {"data": {"AWS_SECRET_ACCESS_KEY": value}})
            edits += 1
        stop.wait(0.05)
    return edits


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch, BackgroundLoop() as loop:
        stack = SandboxStack(Path(scratch), ovh_latency=args.ovh_latency, ovh_activation=args.activation,
                             access=ALLOW_EVERYTHING)
        loop.run(stack.start())
        clients = SandboxClients(stack)
        for namespace in ("noisy", "quiet"):
            clients.core.create_namespace({"metadata": {"name": namespace}})
        settings = {"OVH_S3_OPERATOR_OVH_REQUESTS_PER_SECOND": str(args.rate), "OVH_S3_OPERATOR_DRIFT_INTERVAL": "0"}
        if args.burst is not None:
            settings["OVH_S3_OPERATOR_OVH_BURST"] = str(args.burst)
        env = stack.operator_env(settings)
        log = (Path(scratch) / "operator.log").open("wb")
        operator = OperatorProcess(env, log, python=args.python).start()
        try:
            noisy = [f"noisy-{i}" for i in range(args.noisy)]
            for name in noisy:
                clients.create(name, GRANTS, "noisy")
            for name in noisy:
                clients.wait_ready(name, namespace="noisy", timeout=600)
            alone = time_to_ready(clients, "alone", "quiet")
            stop = threading.Event()
            edits: list[int] = []
            editor = threading.Thread(target=lambda: edits.append(edit_in_a_loop(clients, noisy, stop)))
            editor.start()
            time.sleep(args.warmup)
            try:
                noisy_time = time_to_ready(clients, "during-noise", "quiet")
            finally:
                stop.set()
                editor.join()
            return {"operator": args.python or sys.executable, "ovh_latency_s": args.ovh_latency,
                    "rate_per_s": args.rate, "burst": args.burst, "noisy_resources": args.noisy,
                    "secret_edits": edits[0],
                    "ready_alone_s": round(alone, 2), "ready_during_noise_s": round(noisy_time, 2),
                    "slowdown": round(noisy_time / alone, 2)}
        finally:
            operator.stop()
            loop.run(stack.stop())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", help="interpreter whose ovh_s3_operator runs (default: this one)")
    parser.add_argument("--noisy", type=int, default=3, help="resources whose Secrets are edited in a loop")
    parser.add_argument("--ovh-latency", type=float, default=0.05)
    parser.add_argument("--activation", type=float, default=2.0)
    parser.add_argument("--rate", type=float, default=1.0, help="the operator's OVH requests per second")
    parser.add_argument("--burst", type=int, help="the operator's OVH burst (default: the operator's default)")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of edits before the new resource")
    result = run(parser.parse_args())
    print(f"{'ready alone':<22}{result['ready_alone_s']:>8.2f} s")
    print(f"{'ready during noise':<22}{result['ready_during_noise_s']:>8.2f} s")
    print(f"{'slowdown':<22}{result['slowdown']:>8.2f} x   ({result['secret_edits']} Secret edits)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
