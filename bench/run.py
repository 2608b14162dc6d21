"""The operator at scale, against the sandbox over HTTP: a real ``ovh-s3-operator run`` process.

    python bench/run.py [--n 1000] [--ovh-latency 0.05] [--activation 2] [--rate 50] [--json FILE]

Phases, each measured:

1. **N resources at once** (the sandbox answers 429 above ``--rate`` calls a second, with a burst of
   the same size, and the operator's own limiter is set to the same): time to Ready p50/p95/max, the
   total against the rate-limit bound (calls per user * N / rate + activation), OVH calls per
   resource by route, 429s, the operator's peak RSS.
2. **Idle**: Kubernetes writes over ``--idle`` seconds once everything is Ready (drift checks on).
3. **Restart** with N Ready resources: OVH writes and reads until every resource was looked at.
4. **20 resources at once** with the operator (default rate settings, and the matched ones), the
   seed's sequential handler and OSAM's five threads (``bench/baselines.py``), on fresh sandboxes.
5. **The stand-ins alone**: requests a second the emulator and the OVH sandbox serve, to show that
   they are not the bottleneck at N.

Prints a table, and the same as JSON (``--json FILE`` writes it too).
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import json
import os
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import kubernetes

from ovh_s3_operator.model import API_VERSION, GROUP, KIND, PLURAL, VERSION
from ovh_s3_operator_sandbox.background import BackgroundLoop
from ovh_s3_operator_sandbox.policies import ALLOW_EVERYTHING
from ovh_s3_operator_sandbox.stack import OperatorProcess, SandboxStack, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parent))
import baselines

NAMESPACES = 10
CALLS_PER_USER = 4  # POST user, GET user (ok), POST policy, POST key
WRITES = ("POST", "PUT", "PATCH", "DELETE")


def route(path: str) -> str:
    path = path.split("?")[0]
    path = re.sub(r"/cloud/project/[^/]+", "/cloud/project/{sn}", path)
    path = re.sub(r"/user/\d+", "/user/{id}", path)
    return re.sub(r"/s3Credentials/[^/]+", "/s3Credentials/{access}", path)


def rss_peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Bench:
    def __init__(self, args: argparse.Namespace, scratch: Path, loop: BackgroundLoop) -> None:
        self.args = args
        self.scratch = scratch
        self.loop = loop

    def stack(self, name: str, *, rate: float | None) -> SandboxStack:
        stack = SandboxStack(self.scratch / name, ovh_latency=self.args.ovh_latency,
                             ovh_activation=self.args.activation, ovh_deletion=0.5, ovh_rate_limit=rate,
                             access=ALLOW_EVERYTHING)
        self.loop.run(stack.start())
        stack.kube.requests = collections.deque(maxlen=5_000_000)  # keep every request of the run
        return stack

    def operator(self, stack: SandboxStack, name: str, settings: dict[str, str]) -> OperatorProcess:
        """The operator with these settings, and the operator's own defaults for every other one."""
        env = {key: value for key, value in stack.operator_env().items() if not key.startswith("OVH_S3_OPERATOR_")}
        env.update(settings)
        return OperatorProcess(env, (self.scratch / f"{name}.log").open("wb"), log_level="--quiet").start()

    @staticmethod
    def objects(stack: SandboxStack) -> list[dict[str, Any]]:
        return stack.kube.list_objects(API_VERSION, PLURAL)

    @staticmethod
    def ready(obj: dict[str, Any]) -> bool:
        return any(c.get("type") == "Ready" and c.get("status") == "True"
                   and c.get("observedGeneration") == obj["metadata"]["generation"]
                   for c in obj.get("status", {}).get("conditions") or ())

    def create(self, stack: SandboxStack, n: int, prefix: str = "r") -> float:
        api = kubernetes.config.new_client_from_config(config_file=str(stack.kubeconfig))
        custom = kubernetes.client.CustomObjectsApi(api)
        for i in range(NAMESPACES):
            stack.kube.create_namespace(f"team-{i}")

        def one(i: int) -> None:
            body = {"apiVersion": API_VERSION, "kind": KIND,
                    "metadata": {"name": f"{prefix}{i:04d}", "namespace": f"team-{i % NAMESPACES}"},
                    "spec": {"grants": [{"bucket": f"bench-{i % 50}", "access": "readwrite"}]}}
            custom.create_namespaced_custom_object(GROUP, VERSION, body["metadata"]["namespace"], PLURAL, body)

        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(one, range(n)))
        return started

    def wait_all_ready(self, stack: SandboxStack, n: int, started: float, timeout: float) -> list[float]:
        """Seconds from ``started`` to Ready, per resource (polled every 0.2 s; 0.02 s for a few, whose
        seconds are compared with the baselines' exact ones)."""
        seen: dict[str, float] = {}
        deadline = time.monotonic() + timeout
        while len(seen) < n and time.monotonic() < deadline:
            now = time.monotonic()
            for obj in self.objects(stack):
                key = obj["metadata"]["namespace"] + "/" + obj["metadata"]["name"]
                if key not in seen and self.ready(obj):
                    seen[key] = now - started
            time.sleep(0.2 if n > 50 else 0.02)
        if len(seen) < n:
            raise TimeoutError(f"only {len(seen)} of {n} resources Ready after {timeout:.0f}s")
        return sorted(seen.values())

    # --- phases -----------------------------------------------------------------------------------

    def at_scale(self) -> dict[str, Any]:
        args = self.args
        stack = self.stack("scale", rate=args.rate)
        operator = self.operator(stack, "scale", {
            "OVH_S3_OPERATOR_OVH_REQUESTS_PER_SECOND": str(args.rate), "OVH_S3_OPERATOR_OVH_BURST": str(int(args.rate)),
            "OVH_S3_OPERATOR_DRIFT_INTERVAL": "1800", "OVH_S3_OPERATOR_USER_POLL_INTERVAL": "2"})
        try:
            time.sleep(2)  # the operator is up
            started = self.create(stack, args.n)
            times = self.wait_all_ready(stack, args.n, started, timeout=max(600, 5 * args.n / args.rate))
            calls = stack.ovh.calls()
            by_route = Counter(f"{c.method} {route(c.path)}" for c in calls if c.status != 429)
            total = times[-1]
            bound = CALLS_PER_USER * args.n / args.rate + args.activation
            result: dict[str, Any] = {
                "n": args.n, "ready_p50_s": round(statistics.median(times), 2),
                "ready_p95_s": round(times[int(len(times) * 0.95) - 1], 2), "ready_max_s": round(total, 2),
                "rate_limit_bound_s": round(bound, 1), "total_vs_bound": round(total / bound, 2),
                "ovh_calls": len(calls), "ovh_calls_per_resource": round(len([c for c in calls if c.status != 429
                                                                             and c.path != "/auth/time"]) / args.n, 2),
                "calls_by_route": dict(sorted(by_route.items())),
                "answered_429": sum(1 for c in calls if c.status == 429),
                "answered_429_share": round(sum(1 for c in calls if c.status == 429) / max(1, len(calls)), 4),
                "operator_peak_rss_mb": round(rss_peak_mb(operator.process.pid), 1),  # type: ignore[union-attr]
            }
            mark = len(stack.kube.requests)
            time.sleep(args.idle)
            result["idle_seconds"] = args.idle
            result["idle_kube_writes"] = sum(1 for r in list(stack.kube.requests)[mark:] if r.method in WRITES)
            result.update(self.restart(stack, operator))
            return result
        finally:
            operator.stop()
            self.loop.run(stack.stop())

    def restart(self, stack: SandboxStack, operator: OperatorProcess) -> dict[str, Any]:
        operator.stop()
        stack.ovh.clear_calls()
        names = {obj["metadata"]["name"] for obj in self.objects(stack)}
        mark = len(stack.kube.requests)
        fresh = self.operator(stack, "restart", {
            "OVH_S3_OPERATOR_OVH_REQUESTS_PER_SECOND": str(self.args.rate), "OVH_S3_OPERATOR_DRIFT_INTERVAL": "1800"})
        try:
            def all_looked_at() -> bool:
                looked = {r.path.rsplit("/", 1)[1] for r in list(stack.kube.requests)[mark:]
                          if r.method == "GET" and "/ovhobjectstorageusers/" in r.path}
                return names <= looked
            started = time.monotonic()
            wait_for(all_looked_at, 600, what="every resource to be looked at after the restart")
            elapsed = time.monotonic() - started
            time.sleep(5)
            calls = [c for c in stack.ovh.calls() if c.path != "/auth/time"]
            return {"restart_seconds_to_look_at_all": round(elapsed, 1),
                    "restart_ovh_writes": sum(1 for c in calls if c.method in ("POST", "PUT", "DELETE")),
                    "restart_ovh_reads_per_resource": round(sum(1 for c in calls if c.method == "GET") / len(names), 3),
                    "restart_kube_writes": sum(1 for r in list(stack.kube.requests)[mark:] if r.method in WRITES)}
        finally:
            fresh.stop()

    def twenty(self) -> dict[str, Any]:
        """20 resources at once: the operator (default and matched settings) and the baselines."""
        n, out = 20, {}
        matched = {"OVH_S3_OPERATOR_OVH_REQUESTS_PER_SECOND": str(self.args.rate),
                   "OVH_S3_OPERATOR_OVH_BURST": str(int(self.args.rate))}
        for name, settings in (("operator_default_settings", {}), ("operator_matched_limits", matched)):
            stack = self.stack(name, rate=self.args.rate)
            operator = self.operator(stack, name, settings)
            try:
                time.sleep(2)
                started = self.create(stack, n, prefix="t")
                out[name + "_s"] = round(self.wait_all_ready(stack, n, started, timeout=600)[-1], 2)
            finally:
                operator.stop()
                self.loop.run(stack.stop())
        for name, threads in (("seed_sequential", 1), ("osam_5_threads", 5)):
            stack = self.stack(name, rate=self.args.rate)
            try:
                out[name + "_s"] = round(baselines.run(stack, n, threads), 2)
            finally:
                self.loop.run(stack.stop())
        out["speedup_vs_seed"] = round(out["seed_sequential_s"] / out["operator_matched_limits_s"], 1)
        out["speedup_vs_osam"] = round(out["osam_5_threads_s"] / out["operator_matched_limits_s"], 1)
        return out

    def one_resource(self) -> dict[str, Any]:
        """Apply → Ready of one resource, against the sandbox's own chain of latencies."""
        stack = self.stack("one", rate=None)
        operator = self.operator(stack, "one", {"OVH_S3_OPERATOR_OVH_REQUESTS_PER_SECOND": "50"})
        try:
            time.sleep(2)
            samples = []
            for i in range(5):
                started = self.create(stack, 1, prefix=f"one{i}-")
                samples.append(self._ready_one(stack, f"one{i}-0000", started))
            chain = 4 * self.args.ovh_latency + self.args.activation
            best = min(samples)
            return {"one_resource_ready_s": round(best, 3), "one_resource_chain_s": round(chain, 3),
                    "one_resource_overhead": round(best / chain - 1, 3)}
        finally:
            operator.stop()
            self.loop.run(stack.stop())

    def _ready_one(self, stack: SandboxStack, name: str, started: float) -> float:
        def ready() -> bool:
            obj = stack.kube.get_object(API_VERSION, PLURAL, "team-0", name)
            return obj is not None and self.ready(obj)

        wait_for(ready, 120, interval=0.005, what=f"{name} to be Ready")
        return time.monotonic() - started

    def stand_ins(self) -> dict[str, Any]:
        stack = self.stack("alone", rate=None)
        try:
            api = kubernetes.config.new_client_from_config(config_file=str(stack.kubeconfig))
            core = kubernetes.client.CoreV1Api(api)
            core.create_namespaced_secret("default", {"metadata": {"name": "probe"}, "stringData": {"a": "b"}})
            started, count = time.monotonic(), 2000
            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda _: core.read_namespaced_secret("probe", "default"), range(count)))
            kube_rate = count / (time.monotonic() - started)
            stack.ovh.latency = 0.0
            client = stack.ovh_client()
            path = f"/cloud/project/{stack.ovh.service_name}/role"
            started, count = time.monotonic(), 1000
            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda _: client.get(path), range(count)))
            ovh_rate = count / (time.monotonic() - started)
            return {"emulator_requests_per_s": round(kube_rate), "ovh_sandbox_requests_per_s": round(ovh_rate)}
        finally:
            self.loop.run(stack.stop())


TABLE = [
    ("N resources at once: all Ready (s)", "ready_max_s"),
    ("  rate-limit bound (s)", "rate_limit_bound_s"),
    ("  total / bound", "total_vs_bound"),
    ("  time to Ready p50 / p95 (s)", ("ready_p50_s", "ready_p95_s")),
    ("OVH calls per new resource", "ovh_calls_per_resource"),
    ("calls answered 429 (share)", ("answered_429", "answered_429_share")),
    ("operator peak RSS (MB)", "operator_peak_rss_mb"),
    ("20 at once: operator, matched limits (s)", "operator_matched_limits_s"),
    ("20 at once: seed sequential / OSAM 5 threads (s)", ("seed_sequential_s", "osam_5_threads_s")),
    ("20 at once: speed-up vs seed / vs OSAM", ("speedup_vs_seed", "speedup_vs_osam")),
    ("20 at once: operator, default settings (s)", "operator_default_settings_s"),
    ("one resource: apply→Ready / sandbox chain (s)", ("one_resource_ready_s", "one_resource_chain_s")),
    ("  overhead over the chain", "one_resource_overhead"),
    ("restart with N Ready: OVH writes", "restart_ovh_writes"),
    ("restart with N Ready: OVH reads per resource", "restart_ovh_reads_per_resource"),
    ("idle: Kubernetes writes", "idle_kube_writes"),
    ("emulator alone (requests/s)", "emulator_requests_per_s"),
    ("OVH sandbox alone (requests/s)", "ovh_sandbox_requests_per_s"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--ovh-latency", type=float, default=0.05)
    parser.add_argument("--activation", type=float, default=2.0)
    parser.add_argument("--rate", type=float, default=50.0, help="requests a second the sandbox serves before 429")
    parser.add_argument("--idle", type=float, default=15.0, help="seconds of idleness to count writes over")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--skip", action="append", default=[], choices=["scale", "twenty", "one", "alone"])
    args = parser.parse_args()
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
                               "settings": {k: v for k, v in vars(args).items() if k not in ("json", "skip")}}
    with tempfile.TemporaryDirectory() as scratch, BackgroundLoop() as loop:
        bench = Bench(args, Path(scratch), loop)
        for name, phase in (("scale", bench.at_scale), ("twenty", bench.twenty), ("one", bench.one_resource),
                            ("alone", bench.stand_ins)):
            if name not in args.skip:
                print(f"... {name}", file=sys.stderr, flush=True)
                results.update(phase())
    for label, keys in TABLE:
        values = [results.get(k, "-") for k in (keys if isinstance(keys, tuple) else (keys,))]
        print(f"{label:<52} {' / '.join(str(v) for v in values)}")
    print(json.dumps(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
