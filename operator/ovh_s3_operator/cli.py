"""``ovh-s3-operator``: run the operator, the local sandbox, or the guided demo."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import kopf


def _run(args: argparse.Namespace) -> int:
    kopf.configure(verbose=args.verbose, debug=args.debug, log_format=kopf.LogFormat[args.log_format.upper()])
    from . import handlers  # noqa: F401  (registers the kopf handlers)

    kopf.run(
        clusterwide=not args.namespace,
        namespaces=args.namespace or (),
        standalone=True,
        liveness_endpoint=args.liveness,
    )
    return 0


def _sandbox(args: argparse.Namespace) -> int:
    from .sandbox.runner import run_sandbox

    return run_sandbox(args)


def _demo(args: argparse.Namespace) -> int:
    from .sandbox.demo import run_demo

    return run_demo(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ovh-s3-operator", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the operator (configured by OVH_* and OVH_S3_OPERATOR_* variables)")
    run.add_argument("-n", "--namespace", action="append", default=[],
                     help="watch only this namespace (repeatable; glob patterns allowed); default: all")
    run.add_argument("--liveness", metavar="URL", help="serve a liveness probe, e.g. http://0.0.0.0:8080/healthz")
    run.add_argument("-v", "--verbose", action="store_true", help="log at INFO with more detail")
    run.add_argument("-d", "--debug", action="store_true", help="log at DEBUG")
    run.add_argument("--log-format", choices=["plain", "full", "json"], default="full")
    run.set_defaults(func=_run)

    sandbox = commands.add_parser(
        "sandbox", help="start a local Kubernetes API emulator and OVH API sandbox (and the operator)")
    sandbox.add_argument("--state-dir", required=True, help="where to write kubeconfig and ovh.env")
    sandbox.add_argument("--ovh-latency", type=float, default=0.05, metavar="S",
                         help="seconds added to every OVH API answer (default 0.05)")
    sandbox.add_argument("--ovh-activation", type=float, default=2.0, metavar="S",
                         help="seconds a new OVH user stays 'creating' (default 2)")
    sandbox.add_argument("--ovh-rate-limit", type=float, default=None, metavar="N",
                         help="OVH requests per second before answering 429 (default: unlimited)")
    sandbox.add_argument("--no-operator", action="store_true", help="do not start the operator")
    sandbox.add_argument("--kube-port", type=int, default=0, help="port of the Kubernetes API (default: random)")
    sandbox.add_argument("--ovh-port", type=int, default=0, help="port of the OVH API (default: random)")
    sandbox.set_defaults(func=_sandbox)

    demo = commands.add_parser("demo", help="walk the whole lifecycle on the sandbox and narrate it")
    demo.add_argument("--state-dir", help="keep the sandbox files here (default: a temporary directory)")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in {"kmock", "aiohttp", "jsonpatch", "jsonschema"}:
            print(f"{args.command} needs the sandbox extra: pip install 'ovh-s3-operator[sandbox]'", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
