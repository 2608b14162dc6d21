"""``ovh-s3-operator``: run the operator; ``sandbox`` and ``demo`` come with ovh-s3-operator-sandbox."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

import kopf

SANDBOX_COMMANDS = {
    "sandbox": "start a local Kubernetes API emulator and OVH API sandbox (and the operator)",
    "demo": "walk the whole lifecycle on the sandbox and narrate it",
}


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


def _sandbox_command(command: str, args: Sequence[str]) -> int:
    try:
        sandbox_cli = importlib.import_module("ovh_s3_operator_sandbox.cli")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] != "ovh_s3_operator_sandbox":
            raise
        print(f"'ovh-s3-operator {command}' needs the sandbox: pip install ovh-s3-operator-sandbox "
              "(from a checkout: pip install ./sandbox)", file=sys.stderr)
        return 2
    return int(sandbox_cli.main([command, *args]))


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

    for name, help_text in SANDBOX_COMMANDS.items():  # listed here, parsed by the sandbox package
        commands.add_parser(name, help=help_text)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments and arguments[0] in SANDBOX_COMMANDS:
        return _sandbox_command(arguments[0], arguments[1:])
    args = build_parser().parse_args(arguments)
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
