"""``ovh-s3-operator``: run the operator; ``sandbox`` and ``demo`` come with ovh-s3-operator-sandbox."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

import kopf

SANDBOX_COMMANDS = {
    "sandbox": "start a local Kubernetes API emulator and OVH API sandbox (and the operator)",
    "demo": "walk the whole lifecycle on the sandbox and narrate it",
}


def _run(args: argparse.Namespace) -> int:
    kopf.configure(verbose=args.verbose, debug=args.debug, quiet=args.quiet,
                   log_format=kopf.LogFormat[args.log_format.upper()])
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


def _request_credentials(args: argparse.Namespace) -> int:
    """Ask OVH for a consumer key with exactly the operator's access rules; print it and where to validate it."""
    import ovh

    from .ovh_api import access_rules, register_endpoint

    service = args.service_name or os.environ.get("OVH_SERVICE_NAME")
    key, secret = os.environ.get("OVH_APPLICATION_KEY"), os.environ.get("OVH_APPLICATION_SECRET")
    if not (service and key and secret):
        print("Set OVH_APPLICATION_KEY and OVH_APPLICATION_SECRET (create them at https://eu.api.ovh.com/createApp/) "
              "and --service-name or OVH_SERVICE_NAME (the Public Cloud project id)", file=sys.stderr)
        return 2
    endpoint = register_endpoint(args.endpoint or os.environ.get("OVH_ENDPOINT") or "ovh-eu")
    client = ovh.Client(endpoint=endpoint, application_key=key, application_secret=secret)
    request = client.new_consumer_key_request()
    for method, path in access_rules(service):
        request.add_rule(method, path)
    try:
        answer = request.request()
    except ovh.exceptions.APIError as error:
        print(f"OVH refused the request: {error}", file=sys.stderr)
        return 1
    print("Access rules requested:")
    for method, path in access_rules(service):
        print(f"  {method:<6} {path}")
    print(f"Consumer key: {answer['consumerKey']}  (set it as OVH_CONSUMER_KEY once validated)")
    print(f"Validate it here: {answer['validationUrl']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ovh-s3-operator", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the operator (configured by OVH_* and OVH_S3_OPERATOR_* variables)")
    run.add_argument("-n", "--namespace", action="append", default=[],
                     help="watch only this namespace (repeatable; glob patterns allowed); default: all")
    run.add_argument("--liveness", metavar="URL", help="serve a liveness probe, e.g. http://0.0.0.0:8080/healthz")
    run.add_argument("-v", "--verbose", action="store_true", help="log at INFO with more detail")
    run.add_argument("-d", "--debug", action="store_true", help="log at DEBUG")
    run.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    run.add_argument("--log-format", choices=["plain", "full", "json"], default="full")
    run.set_defaults(func=_run)

    credentials = commands.add_parser("credentials", help="OVH API credentials for the operator")
    actions = credentials.add_subparsers(dest="action", required=True)
    request = actions.add_parser(
        "request", help="ask OVH for a consumer key with exactly the access rules the operator needs")
    request.add_argument("--service-name", help="the Public Cloud project id (default: $OVH_SERVICE_NAME)")
    request.add_argument("--endpoint", help="python-ovh endpoint name or URL (default: $OVH_ENDPOINT or ovh-eu)")
    request.set_defaults(func=_request_credentials)

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
