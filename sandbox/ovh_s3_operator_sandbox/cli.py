"""``ovh-s3-operator sandbox`` and ``ovh-s3-operator demo`` (also ``ovh-s3-operator-sandbox sandbox|demo``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .demo import run_demo
from .runner import run_sandbox


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ovh-s3-operator", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    sandbox = commands.add_parser(
        "sandbox", help="start a local Kubernetes API emulator and OVH API sandbox (and the operator)")
    sandbox.add_argument("--state-dir", required=True,
                         help="where to write kubeconfig, operator.kubeconfig, ovh.env, ovh-oauth2.env and ovh-ca.pem")
    sandbox.add_argument("--ovh-latency", type=float, default=0.05, metavar="S",
                         help="seconds added to every OVH API answer (default 0.05)")
    sandbox.add_argument("--ovh-activation", type=float, default=2.0, metavar="S",
                         help="seconds a new OVH user stays 'creating' (default 2)")
    sandbox.add_argument("--ovh-rate-limit", type=float, default=None, metavar="N",
                         help="OVH requests per second before answering 429 (default: unlimited)")
    sandbox.add_argument("--no-operator", action="store_true", help="do not start the operator")
    sandbox.add_argument("--kube-port", type=int, default=0, help="port of the Kubernetes API (default: random)")
    sandbox.add_argument("--ovh-port", type=int, default=0, help="port of the OVH API (default: random)")
    sandbox.set_defaults(func=run_sandbox)

    demo = commands.add_parser("demo", help="walk the whole lifecycle on the sandbox and narrate it")
    demo.add_argument("--state-dir", help="keep the sandbox files here (default: a temporary directory)")
    demo.set_defaults(func=run_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
