"""``ovh-s3-operator sandbox``: both servers on 127.0.0.1 (and the operator) until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from pathlib import Path

from .stack import OperatorProcess, SandboxStack


async def _serve(stack: SandboxStack, with_operator: bool) -> int:
    await stack.start()
    operator = OperatorProcess(stack.operator_env()).start() if with_operator else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(
        f"Sandbox ready: Kubernetes API {stack.kube.url} (KUBECONFIG={stack.kubeconfig}), "
        f"OVH API {stack.ovh.url} (variables in {stack.ovh_env_file}), "
        + ("operator running" if operator else "operator not started (--no-operator)")
        + "; Ctrl-C to stop",
        flush=True,
    )
    try:
        while not stop.is_set():
            if operator is not None and not operator.running:
                print("The operator exited; stopping the sandbox", flush=True)
                return 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)
        return 0
    finally:
        if operator is not None:
            await asyncio.to_thread(operator.stop)
        await stack.stop()


def run_sandbox(args: argparse.Namespace) -> int:
    stack = SandboxStack(Path(args.state_dir).resolve(), ovh_latency=args.ovh_latency,
                         ovh_activation=args.ovh_activation, ovh_rate_limit=args.ovh_rate_limit,
                         kube_port=args.kube_port, ovh_port=args.ovh_port)
    return asyncio.run(_serve(stack, with_operator=not args.no_operator))
