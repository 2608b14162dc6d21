"""The Kubernetes API emulator over real HTTP, with the kubernetes client, kubectl and a real kopf operator."""

from __future__ import annotations

import itertools
import json
import os
import pathlib
import queue
import re
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import kubernetes
import pytest
import requests
import yaml

from ovh_s3_operator_sandbox import stack
from ovh_s3_operator_sandbox.background import BackgroundLoop
from ovh_s3_operator_sandbox.kube.query import Selector, compile_jsonpath
from ovh_s3_operator_sandbox.kube.server import KubeEmulator, parse_route
from ovh_s3_operator_sandbox.kube.table import human_duration, wants_table

GROUP, VERSION, PLURAL, KIND = "s3.ovh-operator.dev", "v1alpha1", "ovhobjectstorageusers", "OVHObjectStorageUser"
API_VERSION = f"{GROUP}/{VERSION}"
MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"

T = TypeVar("T")
_counter = itertools.count()


# ----------------------------------------------------------------------------------------- fixtures

CRD_PATH = pathlib.Path(__file__).parents[2] / "crds" / "ovhobjectstorageusers.yaml"


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(CRD_PATH.read_text())
    return loaded


@pytest.fixture(scope="module")
def emulator(crd: dict[str, Any]) -> Iterator[KubeEmulator]:
    with BackgroundLoop() as loop:
        emu = KubeEmulator(bookmark_interval=0.3, event_log_size=300)
        loop.run(emu.start())
        emu.install_crd(crd)
        emu.create_namespace("default")
        try:
            yield emu
        finally:
            loop.run(emu.stop())


@pytest.fixture(autouse=True)
def _no_faults_left(emulator: KubeEmulator) -> Iterator[None]:
    yield
    emulator.clear_faults()


@pytest.fixture(scope="module")
def kubeconfig(emulator: KubeEmulator, tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    path = tmp_path_factory.mktemp("kube") / "kubeconfig.yaml"
    emulator.write_kubeconfig(path)
    return path


@pytest.fixture(scope="module")
def api_client(kubeconfig: pathlib.Path) -> Iterator[kubernetes.client.ApiClient]:
    # Built from the file: the kubernetes package reads $KUBECONFIG only at import time.
    client = kubernetes.config.new_client_from_config(config_file=str(kubeconfig))
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="module")
def core(api_client: kubernetes.client.ApiClient) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(api_client)


@pytest.fixture(scope="module")
def custom(api_client: kubernetes.client.ApiClient) -> kubernetes.client.CustomObjectsApi:
    return kubernetes.client.CustomObjectsApi(api_client)


# ------------------------------------------------------------------------------------------ helpers


def osu(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name}, "spec": spec}


def osu_path(namespace: str, name: str = "", subresource: str = "") -> str:
    path = f"/apis/{API_VERSION}/namespaces/{namespace}/{PLURAL}"
    return "/".join(filter(None, [path, name, subresource]))


def wait_for(predicate: Callable[[], T | None], timeout: float = 15.0, what: str = "condition") -> T:
    return stack.wait_for(predicate, timeout, interval=0.05, what=what)


class Http:
    """Raw HTTP against the emulator (for content types and headers the clients do not expose)."""

    def __init__(self, emulator: KubeEmulator, token: str | None = None) -> None:
        self.url = emulator.url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token or emulator.admin_token}"
        self.verify = emulator.ca_file or True  # per request: $REQUESTS_CA_BUNDLE would override the session's

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        **kwargs: Any,
    ) -> requests.Response:
        headers = {"Content-Type": content_type, **kwargs.pop("headers", {})}
        data = json.dumps(body) if body is not None else None
        return self.session.request(method, self.url + path, data=data, headers=headers, timeout=10,
                                    verify=self.verify, **kwargs)

    def json(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> Any:
        response = self.request(method, path, body, content_type)
        assert response.headers["Content-Type"].startswith("application/json")
        return response.json()


class WatchStream:
    """A watch request read on a thread; events (or the end: None, or an exception) go to a queue."""

    def __init__(self, http: Http, path: str, **params: str) -> None:
        self.response = http.session.get(http.url + path, params={"watch": "true", **params}, stream=True,
                                         timeout=10, verify=http.verify)
        assert self.response.status_code == 200
        self._queue: queue.Queue[dict[str, Any] | Exception | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for line in self.response.iter_lines():
                if line:
                    self._queue.put(json.loads(line))
        except Exception as exc:  # a disconnect, or the response closed by the test
            self._queue.put(exc)
        self._queue.put(None)

    def next(self, timeout: float = 10) -> dict[str, Any] | Exception | None:
        return self._queue.get(timeout=timeout)

    def events(self, count: int, skip_bookmarks: bool = True) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = []
        while len(result) < count:
            event = self.next()
            assert isinstance(event, dict), f"the stream ended after {result}: {event!r}"
            if not (skip_bookmarks and event["type"] == "BOOKMARK"):
                result.append(event)
        return result

    def rest(self) -> list[dict[str, Any]]:
        """Every event until the server ends the stream."""
        result = []
        while (event := self.next()) is not None:
            assert isinstance(event, dict), event
            result.append(event)
        return result

    def close(self) -> None:
        self.response.close()


@pytest.fixture(scope="module")
def http(emulator: KubeEmulator) -> Http:
    return Http(emulator)


@pytest.fixture
def ns(emulator: KubeEmulator) -> str:
    """A fresh namespace per test."""
    name = f"t{next(_counter)}-{uuid.uuid4().hex[:6]}"
    emulator.create_namespace(name)
    return name


def kubectl(kubeconfig: pathlib.Path, *args: str, check: bool = True, stdin: str | None = None) -> str:
    result = subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=60,
        input=stdin,
        check=False,
    )
    if check:
        assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
    return result.stdout + result.stderr


def ready_condition(status: str, reason: str = "Provisioned") -> dict[str, Any]:
    return {"status": {"conditions": [{"type": "Ready", "status": status, "reason": reason, "message": "m"}]}}


# --------------------------------------------------------------------------------- pure functions


def test_parse_route() -> None:
    assert parse_route("/api/v1/namespaces").plural == "namespaces"  # type: ignore[union-attr]
    route = parse_route("/api/v1/namespaces/default/status")
    assert route is not None and (route.plural, route.name, route.subresource) == ("namespaces", "default", "status")
    route = parse_route(f"/apis/{API_VERSION}/namespaces/ns1/{PLURAL}/x/status")
    assert route is not None
    assert (route.group, route.namespace, route.plural, route.name, route.subresource) == (
        GROUP,
        "ns1",
        PLURAL,
        "x",
        "status",
    )
    assert parse_route("/api/v1") is None
    assert parse_route("/apis/s3.ovh-operator.dev/v1alpha1") is None
    assert parse_route("/version") is None


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(5, "5s"), (119, "119s"), (180, "3m"), (200, "3m20s"), (7200, "120m"), (3 * 3600 + 60, "3h1m"),
     (10 * 3600, "10h"), (4 * 86400, "4d"), (4 * 86400 + 7200, "4d2h"), (30 * 86400, "30d"), (-5, "<invalid>")],
)  # fmt: skip
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_jsonpath() -> None:
    doc = {
        "status": {
            "userId": 7,
            "conditions": [
                {"type": "Synced", "status": "False"},
                {"type": "Ready", "status": "True", "reason": "Done"},
            ],
        },
        "metadata": {"labels": {"a.b/c": "x"}},
    }
    assert compile_jsonpath(".status.userId")(doc) == [7]
    assert compile_jsonpath("{.status.conditions[0].type}")(doc) == ["Synced"]
    assert compile_jsonpath(".status.conditions[-1].reason")(doc) == ["Done"]
    assert compile_jsonpath('.status.conditions[?(@.type=="Ready")].status')(doc) == ["True"]
    assert compile_jsonpath(".status.conditions[?(@.type!='Ready')].type")(doc) == ["Synced"]
    assert compile_jsonpath(".status.conditions[*].type")(doc) == ["Synced", "Ready"]
    assert compile_jsonpath(".status.conditions[?(@.reason)].type")(doc) == ["Ready"]
    assert compile_jsonpath("$.metadata.labels['a.b/c']")(doc) == ["x"]
    assert compile_jsonpath(".status.missing.deeper")(doc) == []


def test_selectors() -> None:
    def obj(**labels: str) -> dict[str, Any]:
        return {"metadata": {"name": "n", "namespace": "ns", "labels": labels}, "type": "Opaque"}

    assert Selector.parse(None, "a=1,b", None).matches(obj(a="1", b="2"))
    assert not Selector.parse(None, "a==1", None).matches(obj(a="2"))
    assert Selector.parse(None, "a!=1", None).matches(obj())
    assert Selector.parse(None, "!a", None).matches(obj(b="1"))
    assert Selector.parse(None, "a in (x, y),b notin (z)", None).matches(obj(a="y", b="w"))
    assert not Selector.parse(None, "a in (x,y)", None).matches(obj())
    assert Selector.parse("ns", None, "metadata.name=n,type!=Other").matches(obj())
    assert not Selector.parse("other", None, None).matches(obj())
    with pytest.raises(ValueError, match="unable to parse"):
        Selector.parse(None, "a in x", None)
    assert wants_table(TABLE) and not wants_table("application/json")


# ------------------------------------------------------------------------------------ discovery


def test_discovery_and_unknown_paths(http: Http) -> None:
    core = http.json("GET", "/api/v1")
    assert core["groupVersion"] == "v1"
    names = {r["name"]: r for r in core["resources"]}
    assert names["secrets"]["kind"] == "Secret" and names["secrets"]["singularName"] == "secret"
    assert names["namespaces"]["namespaced"] is False and "namespaces/status" in names
    custom = http.json("GET", f"/apis/{API_VERSION}")
    osu_entry = next(r for r in custom["resources"] if r["name"] == PLURAL)
    assert osu_entry["shortNames"] == ["osu"] and osu_entry["categories"] == ["ovh"]
    assert {"list", "watch", "patch"} <= set(osu_entry["verbs"])
    assert any(r["name"] == f"{PLURAL}/status" for r in custom["resources"])
    assert GROUP in {g["name"] for g in http.json("GET", "/apis")["groups"]}
    assert http.json("GET", "/version")["gitVersion"].startswith("v1.")
    unknown = ("/apis/nope.example.com/v1/things", "/apis/nope.example.com/v1", "/apis/nope.example.com")
    for path in (*unknown, "/api/v1/namespaces/default/pods", "/openapi/v3/apis/nope.example.com/v1", "/nope"):
        response = http.request("GET", path)
        assert response.status_code == 404, path
        assert response.json()["kind"] == "Status" and "traceback" not in response.text
    assert http.request("PUT", "/api/v1/namespaces/default/secrets").status_code == 405


def test_namespaces_list_get_status(http: Http, core: kubernetes.client.CoreV1Api, ns: str) -> None:
    listing = http.json("GET", "/api/v1/namespaces")
    assert listing["kind"] == "NamespaceList" and ns in {item["metadata"]["name"] for item in listing["items"]}
    assert core.read_namespace(ns).status.phase == "Active"
    status = http.json("GET", f"/api/v1/namespaces/{ns}/status")
    assert status["kind"] == "Namespace" and status["metadata"]["name"] == ns
    assert ns in [item.metadata.name for item in core.list_namespace().items]


# ------------------------------------------------------------------------------------ create/get


def test_create_assigns_identity(custom: kubernetes.client.CustomObjectsApi, emulator: KubeEmulator, ns: str) -> None:
    created, code, _ = custom.create_namespaced_custom_object_with_http_info(GROUP, VERSION, ns, PLURAL, osu("a"))
    assert code == 201
    meta = created["metadata"]
    assert uuid.UUID(meta["uid"]) and meta["generation"] == 1 and meta["namespace"] == ns
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", meta["creationTimestamp"])
    second = custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, osu("b"))
    assert int(second["metadata"]["resourceVersion"]) > int(meta["resourceVersion"])
    assert second["metadata"]["uid"] != meta["uid"]
    assert emulator.get_object(API_VERSION, PLURAL, ns, "a") == created
    assert emulator.get_object(API_VERSION, PLURAL, ns, "missing") is None
    with pytest.raises(KeyError, match="not served"):
        emulator.get_object("v1", "secret", ns, "a")
    assert [o["metadata"]["name"] for o in emulator.list_objects(API_VERSION, PLURAL, ns)] == ["a", "b"]


def test_create_secret_string_data(core: kubernetes.client.CoreV1Api, ns: str) -> None:
    body = {"metadata": {"name": "s"}, "stringData": {"AWS_REGION": "gra"}, "data": {"x": "eA=="}}
    secret = core.create_namespaced_secret(ns, body)
    assert secret.data == {"x": "eA==", "AWS_REGION": "Z3Jh"} and secret.string_data is None
    assert secret.type == "Opaque" and secret.kind == "Secret" and secret.api_version == "v1"


def test_create_errors(http: Http, custom: kubernetes.client.CustomObjectsApi, ns: str) -> None:
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, osu("dup"))
    with pytest.raises(kubernetes.client.ApiException) as exc:
        custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, osu("dup"))
    assert exc.value.status == 409 and json.loads(exc.value.body)["reason"] == "AlreadyExists"
    nameless = http.request("POST", osu_path(ns), {"apiVersion": API_VERSION, "kind": KIND, "spec": {}})
    assert nameless.status_code == 422 and "metadata.name" in nameless.json()["message"]
    elsewhere = {"metadata": {"name": "x", "namespace": "other"}}
    assert http.request("POST", f"/api/v1/namespaces/{ns}/configmaps", elsewhere).status_code == 400
    assert http.request("POST", "/api/v1/namespaces/absent/configmaps", {"metadata": {"name": "x"}}).status_code == 404
    assert http.request("POST", f"/api/v1/namespaces/{ns}/configmaps", [1]).status_code == 400
    bad_name = http.request("POST", f"/api/v1/namespaces/{ns}/configmaps", {"metadata": {"name": "Bad_Name"}})
    assert bad_name.status_code == 422


def test_generate_name(core: kubernetes.client.CoreV1Api, ns: str) -> None:
    event = core.create_namespaced_event(
        ns,
        {"metadata": {"generateName": "kopf-event-"}, "involvedObject": {"name": "x"}, "reason": "R", "message": "m"},
    )
    assert re.fullmatch(r"kopf-event-[a-z0-9]{5}", event.metadata.name)


def test_list_with_selectors(core: kubernetes.client.CoreV1Api, http: Http, emulator: KubeEmulator, ns: str) -> None:
    for name, labels, kind in [("s1", {"app": "a", "tier": "db"}, "Opaque"), ("s2", {"app": "b"}, "kubernetes.io/tls"),
                               ("s3", {}, "Opaque")]:  # fmt: skip
        core.create_namespaced_secret(ns, {"metadata": {"name": name, "labels": labels}, "type": kind})

    def names(**kwargs: str) -> list[str]:
        return [s.metadata.name for s in core.list_namespaced_secret(ns, **kwargs).items]

    assert names() == ["s1", "s2", "s3"]
    assert names(label_selector="app=a") == ["s1"]
    assert names(label_selector="app==b") == ["s2"]
    assert names(label_selector="app!=a") == ["s2", "s3"]
    assert names(label_selector="app") == ["s1", "s2"]
    assert names(label_selector="!app") == ["s3"]
    assert names(label_selector="app in (a,b),tier notin (web)") == ["s1", "s2"]
    assert names(field_selector="metadata.name=s2") == ["s2"]
    assert names(field_selector="type!=Opaque") == ["s2"]
    assert names(field_selector=f"metadata.namespace={ns},type=Opaque", label_selector="tier=db") == ["s1"]
    everywhere = core.list_secret_for_all_namespaces(label_selector="app=a")
    assert [(s.metadata.namespace, s.metadata.name) for s in everywhere.items] == [(ns, "s1")]
    listing = http.json("GET", f"/api/v1/namespaces/{ns}/secrets")
    assert listing["kind"] == "SecretList" and listing["apiVersion"] == "v1"
    current = max(int(s["metadata"]["resourceVersion"]) for s in listing["items"])
    assert int(listing["metadata"]["resourceVersion"]) >= current
    assert http.request("GET", f"/api/v1/namespaces/{ns}/secrets?labelSelector=a+in+x").status_code == 400


# ------------------------------------------------------------------------------------ writes


def test_merge_and_strategic_patches(http: Http, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    created = http.json("POST", path, {"metadata": {"name": "c", "labels": {"a": "1", "b": "2"}}, "data": {"k": "v"}})
    patched = http.json("PATCH", f"{path}/c", {"metadata": {"labels": {"a": None, "c": "3"}}}, MERGE)
    assert patched["metadata"]["labels"] == {"b": "2", "c": "3"}
    assert int(patched["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    assert "generation" not in patched["metadata"]  # ConfigMaps have none
    strategic = {"data": {"k": "w", "$patch": "merge"}, "$setElementOrder/finalizers": []}
    patched = http.json("PATCH", f"{path}/c", strategic, STRATEGIC)
    assert patched["data"] == {"k": "w"}
    noop = http.json("PATCH", f"{path}/c", {"data": {"k": "w"}}, MERGE)
    assert noop["metadata"]["resourceVersion"] == patched["metadata"]["resourceVersion"]
    immutable = {"metadata": {"uid": "other", "name": "renamed", "creationTimestamp": "2000-01-01T00:00:00Z"}}
    kept = http.json("PATCH", f"{path}/c", immutable, MERGE)
    assert kept["metadata"]["uid"] == created["metadata"]["uid"] and kept["metadata"]["name"] == "c"
    assert kept["metadata"]["creationTimestamp"] == created["metadata"]["creationTimestamp"]
    assert http.request("PATCH", f"{path}/c", {"data": {}}, "application/apply-patch+yaml").status_code == 415
    assert http.request("PATCH", osu_path(ns, "any"), {}, STRATEGIC).status_code == 415  # custom resources
    assert http.request("PATCH", f"{path}/missing", {"data": {}}, MERGE).status_code == 404


def test_json_patch_and_conflicts(http: Http, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    rv = http.json("POST", path, {"metadata": {"name": "c"}})["metadata"]["resourceVersion"]
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
        {"op": "add", "path": "/metadata/finalizers", "value": ["x/y"]},
    ]
    patched = http.json("PATCH", f"{path}/c", ops, JSON_PATCH)
    assert patched["metadata"]["finalizers"] == ["x/y"]
    stale = http.request("PATCH", f"{path}/c", ops, JSON_PATCH)
    assert stale.status_code == 422 and stale.json()["reason"] == "Invalid"
    conflict = http.request("PATCH", f"{path}/c", {"metadata": {"resourceVersion": rv}, "data": {"a": "b"}}, MERGE)
    assert conflict.status_code == 409 and conflict.json()["reason"] == "Conflict"
    assert "the object has been modified" in conflict.json()["message"]
    remove_missing = http.request("PATCH", f"{path}/c", [{"op": "remove", "path": "/data/nope"}], JSON_PATCH)
    assert remove_missing.status_code == 422


def test_put_replace(http: Http, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    created = http.json("POST", path, {"metadata": {"name": "c"}, "data": {"a": "1"}})
    replaced = http.json("PUT", f"{path}/c", {**created, "data": {"b": "2"}})
    assert replaced["data"] == {"b": "2"} and replaced["metadata"]["uid"] == created["metadata"]["uid"]
    stale = http.request("PUT", f"{path}/c", {**created, "data": {"c": "3"}})
    assert stale.status_code == 409
    assert stale.json()["message"].endswith(
        "the object has been modified; please apply your changes to the latest version and try again"
    )
    unconditional = http.json("PUT", f"{path}/c", {"metadata": {"name": "c"}, "data": {"d": "4"}})
    assert unconditional["data"] == {"d": "4"}
    assert http.request("PUT", f"{path}/c", {"metadata": {"name": "other"}}).status_code == 400


def test_status_subresource_and_generation(custom: kubernetes.client.CustomObjectsApi, http: Http, ns: str) -> None:
    created = custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, {**osu("s"), "status": {"userId": 1}})
    assert "status" not in created  # ignored on create, as with a status subresource
    main = http.json("PATCH", osu_path(ns, "s"), {"spec": {"region": "gra"}, "status": {"userId": 2}}, MERGE)
    assert "status" not in main and main["spec"]["region"] == "gra" and main["metadata"]["generation"] == 2
    status = http.json(
        "PATCH", osu_path(ns, "s", "status"), {"spec": {"region": "sbg"}, "status": {"userId": 3}}, MERGE
    )
    assert status["status"] == {"userId": 3} and status["spec"]["region"] == "gra"
    assert status["metadata"]["generation"] == 2
    assert int(status["metadata"]["resourceVersion"]) > int(main["metadata"]["resourceVersion"])
    via_client = custom.patch_namespaced_custom_object_status(GROUP, VERSION, ns, PLURAL, "s", ready_condition("True"))
    assert via_client["status"]["conditions"][0]["status"] == "True" and via_client["status"]["userId"] == 3
    labelled = http.json("PATCH", osu_path(ns, "s"), {"metadata": {"labels": {"x": "y"}}}, MERGE)
    assert labelled["metadata"]["generation"] == 2
    fetched = http.json("GET", osu_path(ns, "s", "status"))
    assert fetched["status"]["userId"] == 3
    ops = [{"op": "test", "path": "/metadata/resourceVersion", "value": fetched["metadata"]["resourceVersion"]},
           {"op": "replace", "path": "/status/userId", "value": 4}]  # fmt: skip
    assert http.json("PATCH", osu_path(ns, "s", "status"), ops, JSON_PATCH)["status"]["userId"] == 4
    stale = http.request("PUT", osu_path(ns, "s", "status"), {**fetched, "status": {"userId": 5}})
    assert stale.status_code == 409
    del fetched["metadata"]["resourceVersion"]
    unconditional = http.json("PUT", osu_path(ns, "s", "status"), {**fetched, "status": {"userId": 5}})
    assert unconditional["code"] == 422 and unconditional["message"] == (
        f'{PLURAL}.{GROUP} "s" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for '
        'an update')
    fetched["metadata"]["resourceVersion"] = http.json("GET", osu_path(ns, "s"))["metadata"]["resourceVersion"]
    replaced = http.json("PUT", osu_path(ns, "s", "status"), {**fetched, "status": {"userId": 5}, "spec": {}})
    assert replaced["status"] == {"userId": 5} and replaced["spec"]["region"] == "gra"
    assert http.request("GET", f"/api/v1/namespaces/{ns}/configmaps/x/status").status_code == 404


def test_schema_validation_defaulting_pruning(http: Http, custom: kubernetes.client.CustomObjectsApi, ns: str) -> None:
    body = osu("v", grants=[{"bucket": "abc", "access": "foo"}])
    with pytest.raises(kubernetes.client.ApiException) as exc:
        custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body)
    status = json.loads(exc.value.body)
    assert exc.value.status == 422 and status["reason"] == "Invalid"
    assert status["message"] == (
        f'{KIND}.{GROUP} "v" is invalid: spec.grants[0].access: Unsupported value: "foo": '
        'supported values: "read", "readwrite", "admin"'
    )
    assert status["details"]["causes"][0]["field"] == "spec.grants[0].access"
    several = http.request("POST", osu_path(ns), osu("v", region="GRA", grants=[{"access": "read"}], roles=[]))
    message = several.json()["message"]
    assert several.status_code == 422
    for expected in ("spec.region: Invalid value", "spec.grants[0].bucket: Required value", "spec.roles"):
        assert expected in message
    assert (
        http.request(
            "POST", osu_path(ns), {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": "n"}}
        ).status_code
        == 422
    )
    created = custom.create_namespaced_custom_object(
        GROUP,
        VERSION,
        ns,
        PLURAL,
        osu("v", unknown=1, policy={"Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["*"],
                                                     "Extra": 1}], "Any": 2}),
    )
    assert created["spec"]["roles"] == ["objectstore_operator"]  # defaulted
    assert "unknown" not in created["spec"]  # pruned
    assert created["spec"]["policy"] == {"Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"],
                                                        "Resource": ["*"]}]}  # pruned inside too
    invalid_patch = http.request("PATCH", osu_path(ns, "v"), {"spec": {"region": 5}}, MERGE)
    assert invalid_patch.status_code == 422 and "spec.region" in invalid_patch.json()["message"]


# ------------------------------------------------------------------------------------ deletion


def test_finalizers_and_garbage_collection(
    custom: kubernetes.client.CustomObjectsApi,
    core: kubernetes.client.CoreV1Api,
    http: Http,
    emulator: KubeEmulator,
    ns: str,
) -> None:
    owner = custom.create_namespaced_custom_object(
        GROUP,
        VERSION,
        ns,
        PLURAL,
        {**osu("o"), "metadata": {"name": "o", "finalizers": ["s3.ovh-operator.dev/ovh-user"]}},
    )
    reference = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": "o",
        "uid": owner["metadata"]["uid"],
        "controller": True,
    }
    core.create_namespaced_secret(ns, {"metadata": {"name": "o-s3", "ownerReferences": [reference]}})
    core.create_namespaced_secret(ns, {"metadata": {"name": "kept", "ownerReferences": [reference]}})
    other = core.create_namespaced_config_map(ns, {"metadata": {"name": "other-owner"}})
    second = {"apiVersion": "v1", "kind": "ConfigMap", "name": "other-owner", "uid": other.metadata.uid}
    core.create_namespaced_secret(ns, {"metadata": {"name": "two-owners", "ownerReferences": [reference, second]}})

    marked = custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "o")
    assert marked["metadata"]["deletionTimestamp"] and marked["metadata"]["deletionGracePeriodSeconds"] == 0
    assert marked["metadata"]["generation"] == owner["metadata"]["generation"] + 1
    again = custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "o")
    assert again["metadata"]["resourceVersion"] == marked["metadata"]["resourceVersion"]
    assert emulator.get_object("v1", "secrets", ns, "o-s3") is not None
    adding = http.request(
        "PATCH", osu_path(ns, "o"), {"metadata": {"finalizers": ["a", "s3.ovh-operator.dev/ovh-user"]}}, MERGE
    )
    assert adding.status_code == 422 and "no new finalizers" in adding.json()["message"]

    # Orphan one dependent first: it loses its owner reference instead of being collected.
    secret_rv = core.read_namespaced_secret("kept", ns).metadata.resource_version
    ops = [{"op": "test", "path": "/metadata/resourceVersion", "value": secret_rv}]
    assert http.request("PATCH", f"/api/v1/namespaces/{ns}/secrets/kept", ops, JSON_PATCH).status_code == 200
    with emulator.garbage_collector.hold():
        http.request("PATCH", osu_path(ns, "o"), {"metadata": {"finalizers": None}}, MERGE)
        assert emulator.get_object(API_VERSION, PLURAL, ns, "o") is None
        assert emulator.get_object("v1", "secrets", ns, "o-s3") is not None  # the collector comes later
    wait_for(lambda: emulator.get_object("v1", "secrets", ns, "o-s3") is None, what="o-s3 collected")
    wait_for(lambda: emulator.get_object("v1", "secrets", ns, "kept") is None, what="kept collected")

    def dangling_reference_removed() -> bool:
        two = emulator.get_object("v1", "secrets", ns, "two-owners")
        return two is not None and two["metadata"]["ownerReferences"] == [second]  # another owner still exists

    wait_for(dangling_reference_removed, what="the dangling reference removed")
    with pytest.raises(kubernetes.client.ApiException) as exc:
        custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "o")
    assert exc.value.status == 404


def test_orphan_propagation(core: kubernetes.client.CoreV1Api, emulator: KubeEmulator, ns: str) -> None:
    owner = core.create_namespaced_config_map(ns, {"metadata": {"name": "owner"}})
    reference = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
    core.create_namespaced_secret(ns, {"metadata": {"name": "dependent", "ownerReferences": [reference]}})
    core.delete_namespaced_config_map("owner", ns, propagation_policy="Orphan")

    def orphaned() -> bool:
        orphan = emulator.get_object("v1", "secrets", ns, "dependent")
        assert orphan is not None
        return not orphan["metadata"].get("ownerReferences")

    wait_for(orphaned, what="the dependent orphaned")
    wait_for(lambda: emulator.get_object("v1", "configmaps", ns, "owner") is None, what="the owner deleted")


def test_namespace_deletion(core: kubernetes.client.CoreV1Api, http: Http, emulator: KubeEmulator, ns: str) -> None:
    core.create_namespaced_secret(ns, {"metadata": {"name": "plain"}})
    core.create_namespaced_config_map(ns, {"metadata": {"name": "held", "finalizers": ["x/y"]}})
    core.delete_namespace(ns)
    assert emulator.get_object("v1", "secrets", ns, "plain") is None
    namespace = emulator.get_object("v1", "namespaces", None, ns)
    assert namespace is not None and namespace["status"]["phase"] == "Terminating"
    assert http.request("POST", f"/api/v1/namespaces/{ns}/secrets", {"metadata": {"name": "new"}}).status_code == 403
    http.request("PATCH", f"/api/v1/namespaces/{ns}/configmaps/held", {"metadata": {"finalizers": []}}, MERGE)
    assert emulator.get_object("v1", "namespaces", None, ns) is None


# ------------------------------------------------------------------------------------ watch


def test_watch_initial_live_and_selectors(http: Http, emulator: KubeEmulator, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    http.json("POST", path, {"metadata": {"name": "a", "labels": {"w": "1"}}})
    http.json("POST", path, {"metadata": {"name": "b"}})
    everything = WatchStream(http, path, timeoutSeconds="3")
    selected = WatchStream(http, "/api/v1/configmaps", labelSelector="w=1", timeoutSeconds="3")
    try:
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in everything.events(2)] == [
            ("ADDED", "a"),
            ("ADDED", "b"),
        ]
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in selected.events(1)] == [("ADDED", "a")]
        http.json("PATCH", f"{path}/b", {"metadata": {"labels": {"w": "1"}}}, MERGE)  # enters the selection
        http.json("PATCH", f"{path}/a", {"metadata": {"labels": {"w": "2"}}}, MERGE)  # leaves it
        http.request("DELETE", f"{path}/b")
        live = [(e["type"], e["object"]["metadata"]["name"]) for e in everything.events(3)]
        assert live == [("MODIFIED", "b"), ("MODIFIED", "a"), ("DELETED", "b")]
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in selected.events(3)] == [
            ("ADDED", "b"),
            ("DELETED", "a"),
            ("DELETED", "b"),
        ]
    finally:
        everything.close()
        selected.close()


def test_watch_resumes_from_resource_version(http: Http, emulator: KubeEmulator, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    rv = http.json("POST", path, {"metadata": {"name": "a"}})["metadata"]["resourceVersion"]
    http.json("PATCH", f"{path}/a", {"data": {"x": "1"}}, MERGE)
    http.json("POST", path, {"metadata": {"name": "b"}})
    events = WatchStream(http, path, resourceVersion=rv, timeoutSeconds="1").rest()
    replayed = [(e["type"], e["object"]["metadata"]["name"]) for e in events]
    assert replayed == [("MODIFIED", "a"), ("ADDED", "b")]
    assert all(int(e["object"]["metadata"]["resourceVersion"]) > int(rv) for e in events)


def test_watch_expired_resource_version(http: Http, emulator: KubeEmulator, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    rv = http.json("POST", path, {"metadata": {"name": "a"}})["metadata"]["resourceVersion"]
    for index in range(emulator.event_log_size + 1):
        http.json("PATCH", f"{path}/a", {"data": {"i": str(index)}}, MERGE)
    events = WatchStream(http, path, resourceVersion=rv).rest()
    assert len(events) == 1 and events[0]["type"] == "ERROR"
    assert events[0]["object"]["code"] == 410 and events[0]["object"]["reason"] == "Expired"


def test_watch_bookmarks_timeout_and_initial_events(http: Http, emulator: KubeEmulator, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    http.json("POST", path, {"metadata": {"name": "a"}})
    events = WatchStream(http, path, allowWatchBookmarks="true", timeoutSeconds="1").rest()
    assert events[0]["type"] == "ADDED"
    bookmarks = [e for e in events if e["type"] == "BOOKMARK"]
    assert bookmarks, "no bookmark within the watch"
    assert bookmarks[-1]["object"]["kind"] == "ConfigMap"
    assert int(bookmarks[-1]["object"]["metadata"]["resourceVersion"]) >= int(
        events[0]["object"]["metadata"]["resourceVersion"]
    )
    assert not [e for e in WatchStream(http, path, timeoutSeconds="1").rest() if e["type"] == "BOOKMARK"]
    initial = WatchStream(http, path, sendInitialEvents="true", resourceVersionMatch="NotOlderThan",
                          timeoutSeconds="1").rest()  # fmt: skip
    assert [e["type"] for e in initial] == ["ADDED", "BOOKMARK"]
    assert initial[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


def test_kubernetes_client_watch(core: kubernetes.client.CoreV1Api, ns: str) -> None:
    core.create_namespaced_config_map(ns, {"metadata": {"name": "w"}})
    seen = []
    for event in kubernetes.watch.Watch().stream(core.list_namespaced_config_map, ns, timeout_seconds=1):
        seen.append((event["type"], event["object"].metadata.name))
    assert seen == [("ADDED", "w")]


def test_drop_watches(emulator: KubeEmulator, http: Http, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    http.json("POST", path, {"metadata": {"name": "a"}})
    stream = WatchStream(http, path)
    assert stream.events(1)[0]["type"] == "ADDED"
    emulator.drop_watches()
    ending = stream.next()
    assert isinstance(ending, requests.RequestException)  # an abrupt disconnect, not a clean end


# ------------------------------------------------------------------------------------ faults, log


def test_faults(emulator: KubeEmulator, http: Http, core: kubernetes.client.CoreV1Api, ns: str) -> None:
    core.create_namespaced_secret(ns, {"metadata": {"name": "s"}})
    fault = emulator.add_fault(method="PATCH", plural="secrets", namespace=ns, status=503, times=2, message="boom")
    for _ in range(2):
        failed = http.request("PATCH", f"/api/v1/namespaces/{ns}/secrets/s", {"data": {}}, MERGE)
        assert failed.status_code == 503 and failed.json()["message"] == "boom"
    assert http.request("PATCH", f"/api/v1/namespaces/{ns}/secrets/s", {"data": {}}, MERGE).status_code == 200
    assert fault.hits == 2
    forever = emulator.add_fault(method="watch", plural="secrets", status=500, times=-1)
    for _ in range(3):
        with pytest.raises(kubernetes.client.ApiException) as exc:
            next(iter(kubernetes.watch.Watch().stream(core.list_namespaced_secret, ns, timeout_seconds=1)))
        assert exc.value.status == 500
    assert core.list_namespaced_secret(ns).items  # lists are not watches
    emulator.remove_fault(forever)
    assert forever.hits == 3
    emulator.add_fault(name="s", status=429)
    assert http.request("GET", f"/api/v1/namespaces/{ns}/secrets/s").status_code == 429
    emulator.add_fault(status=500, times=-1)
    emulator.clear_faults()
    assert http.request("GET", f"/api/v1/namespaces/{ns}/secrets/s").status_code == 200


def test_request_log(emulator: KubeEmulator, http: Http, ns: str) -> None:
    http.request("GET", f"/api/v1/namespaces/{ns}/secrets/absent")
    assert emulator.requests[-1][:3] == ("GET", f"/api/v1/namespaces/{ns}/secrets/absent", 404)
    assert len(emulator.requests) <= emulator.request_log_size


# ------------------------------------------------------------------------------------ tables


def test_table_output(http: Http, custom: kubernetes.client.CustomObjectsApi, ns: str) -> None:
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, osu("t"))
    custom.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        ns,
        PLURAL,
        "t",
        {"status": {"userId": 42, "secretName": "t-s3", **ready_condition("True")["status"]}},
    )
    response = http.request("GET", osu_path(ns), headers={"Accept": TABLE})
    table = response.json()
    assert table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    columns = [(c["name"], c["priority"]) for c in table["columnDefinitions"]]
    assert columns == [("Name", 0), ("Ready", 0), ("Reason", 1), ("User ID", 0), ("Secret", 0), ("Key Issued", 1),
                       ("Project", 1), ("Age", 0)]
    (row,) = table["rows"]
    assert row["cells"][:7] == ["t", "True", "Provisioned", 42, "t-s3", None, None]  # no key issued, no project
    assert re.fullmatch(r"\d+s", row["cells"][7])
    assert row["object"]["kind"] == "PartialObjectMetadata" and row["object"]["metadata"]["namespace"] == ns
    single = http.request("GET", osu_path(ns, "t") + "?includeObject=None", headers={"Accept": TABLE}).json()
    assert single["rows"][0]["cells"][0] == "t" and "object" not in single["rows"][0]
    secrets = http.request("GET", "/api/v1/secrets", headers={"Accept": TABLE}).json()
    assert [c["name"] for c in secrets["columnDefinitions"]] == ["Name", "Type", "Data", "Age"]
    namespaces = http.request("GET", "/api/v1/namespaces", headers={"Accept": TABLE}).json()
    assert [c["name"] for c in namespaces["columnDefinitions"]] == ["Name", "Status", "Age"]


# ------------------------------------------------------------------------------------ kubectl


def test_kubectl_get_columns(kubeconfig: pathlib.Path, custom: kubernetes.client.CustomObjectsApi, ns: str) -> None:
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, osu("k"))
    custom.patch_namespaced_custom_object_status(GROUP, VERSION, ns, PLURAL, "k", ready_condition("False", "Waiting"))
    lines = kubectl(kubeconfig, "get", "osu", "-A").splitlines()
    assert lines[0].split() == ["NAMESPACE", "NAME", "READY", "USER", "ID", "SECRET", "AGE"]
    assert any(line.split()[:3] == [ns, "k", "False"] for line in lines[1:])
    wide = kubectl(kubeconfig, "get", "osu", "-n", ns, "-o", "wide").splitlines()
    assert wide[0].split() == ["NAME", "READY", "REASON", "USER", "ID", "SECRET", "KEY", "ISSUED", "PROJECT",
                               "AGE"]
    assert wide[1].split()[:3] == ["k", "False", "Waiting"]
    fetched = yaml.safe_load(kubectl(kubeconfig, "get", "osu", "k", "-n", ns, "-o", "yaml"))
    assert fetched["kind"] == KIND and fetched["spec"]["roles"] == ["objectstore_operator"]
    assert "ovhobjectstorageusers.s3.ovh-operator.dev" in kubectl(kubeconfig, "get", "crd")
    assert kubectl(kubeconfig, "get", "ns", ns).split()[-3:-1] == [ns, "Active"]


def test_kubectl_apply_label_patch_describe(
    kubeconfig: pathlib.Path, core: kubernetes.client.CoreV1Api, emulator: KubeEmulator, ns: str, tmp_path: pathlib.Path
) -> None:
    manifest = tmp_path / "osu.yaml"
    manifest.write_text(yaml.safe_dump({**osu("app", grants=[{"bucket": "app-data", "access": "read"}]),
                                        "metadata": {"name": "app", "namespace": ns}}))  # fmt: skip
    assert "created" in kubectl(kubeconfig, "apply", "-f", str(manifest))
    manifest.write_text(manifest.read_text().replace("access: read", "access: readwrite"))
    assert "configured" in kubectl(kubeconfig, "apply", "-f", str(manifest))
    kubectl(kubeconfig, "label", "-n", ns, "osu", "app", "team=a")
    kubectl(kubeconfig, "patch", "-n", ns, "osu", "app", "--type=merge", "-p", '{"spec":{"region":"sbg"}}')
    stored = emulator.get_object(API_VERSION, PLURAL, ns, "app")
    assert stored is not None
    assert stored["metadata"]["labels"] == {"team": "a"} and stored["spec"]["region"] == "sbg"
    assert stored["spec"]["grants"][0]["access"] == "readwrite" and stored["metadata"]["generation"] == 3
    reference = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": "app",
        "namespace": ns,
        "uid": stored["metadata"]["uid"],
    }
    core.create_namespaced_event(
        ns,
        {
            "metadata": {"generateName": "app-"},
            "involvedObject": reference,
            "type": "Normal",
            "reason": "UserCreated",
            "message": "Created OVH user 123",
            "source": {"component": "ovh-s3-operator"},
            "firstTimestamp": "2024-01-01T00:00:00Z",
            "lastTimestamp": "2024-01-01T00:00:00Z",
            "count": 1,
        },
    )
    described = kubectl(kubeconfig, "describe", "-n", ns, "osu", "app")
    assert "Name:         app" in described
    events = described.split("Events:", 1)[1]
    assert "UserCreated" in events and "Created OVH user 123" in events


def test_kubectl_delete_and_wait(
    kubeconfig: pathlib.Path, custom: kubernetes.client.CustomObjectsApi, http: Http, emulator: KubeEmulator, ns: str
) -> None:
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, osu("plain"))
    assert "deleted" in kubectl(kubeconfig, "delete", "-n", ns, "osu", "plain")
    assert emulator.get_object(API_VERSION, PLURAL, ns, "plain") is None

    custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, osu("held"))
    http.json("PATCH", osu_path(ns, "held"), {"metadata": {"finalizers": ["s3.ovh-operator.dev/ovh-user"]}}, MERGE)
    waiting = subprocess.Popen(
        [
            "kubectl",
            "--kubeconfig",
            str(kubeconfig),
            "wait",
            "-n",
            ns,
            "--for=condition=Ready",
            "osu/held",
            "--timeout=20s",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deleting = subprocess.Popen(
        ["kubectl", "--kubeconfig", str(kubeconfig), "delete", "-n", ns, "osu", "held", "--timeout=20s"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        def marked() -> Any:
            held = emulator.get_object(API_VERSION, PLURAL, ns, "held") or {}
            return held.get("metadata", {}).get("deletionTimestamp")

        wait_for(marked, what="deletionTimestamp")
        time.sleep(0.3)
        assert waiting.poll() is None and deleting.poll() is None  # both still waiting
        custom.patch_namespaced_custom_object_status(GROUP, VERSION, ns, PLURAL, "held", ready_condition("True"))
        output, _ = waiting.communicate(timeout=20)
        assert waiting.returncode == 0 and "condition met" in output
        assert deleting.poll() is None  # the finalizer still holds the object
        http.json("PATCH", osu_path(ns, "held"), {"metadata": {"finalizers": None}}, MERGE)
        output, _ = deleting.communicate(timeout=20)
        assert deleting.returncode == 0 and "deleted" in output
    finally:
        for process in (waiting, deleting):
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert emulator.get_object(API_VERSION, PLURAL, ns, "held") is None


def test_kubectl_create_namespace_and_builtins(kubeconfig: pathlib.Path, emulator: KubeEmulator) -> None:
    name = f"created-{uuid.uuid4().hex[:6]}"
    kubectl(kubeconfig, "create", "namespace", name)
    namespace = emulator.get_object("v1", "namespaces", None, name)
    assert namespace is not None and namespace["metadata"]["labels"]["kubernetes.io/metadata.name"] == name
    kubectl(kubeconfig, "create", "-n", name, "secret", "generic", "creds", "--from-literal=AWS_REGION=gra")
    secret = emulator.get_object("v1", "secrets", name, "creds")
    assert secret is not None and secret["data"] == {"AWS_REGION": "Z3Jh"} and secret["type"] == "Opaque"
    kubectl(kubeconfig, "create", "-n", name, "configmap", "conf", "--from-literal=a=b")
    assert (emulator.get_object("v1", "configmaps", name, "conf") or {}).get("data") == {"a": "b"}
    assert "secret/creds" in kubectl(kubeconfig, "get", "-n", name, "secrets,configmaps", "-o", "name")
    kubectl(kubeconfig, "delete", "namespace", name)
    assert emulator.get_object("v1", "namespaces", None, name) is None


def test_crd_lifecycle_over_http(kubeconfig: pathlib.Path, http: Http, emulator: KubeEmulator, ns: str) -> None:
    schema = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Cluster",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": schema}}],
        },
    }
    stored = http.json("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    assert {c["type"] for c in stored["status"]["conditions"]} == {"Established", "NamesAccepted"}
    assert http.json("POST", "/apis/example.com/v1/widgets", {"metadata": {"name": "w"}, "size": 3})["size"] == 3
    assert "w" in kubectl(kubeconfig, "get", "widgets")
    kubectl(kubeconfig, "delete", "crd", "widgets.example.com")
    assert http.request("GET", "/apis/example.com/v1/widgets").status_code == 404
    assert (
        emulator.get_object("apiextensions.k8s.io/v1", "customresourcedefinitions", None, "widgets.example.com") is None
    )


# ------------------------------------------------------------------------------------ kopf


TINY_OPERATOR = """
    import asyncio
    import os
    import pathlib

    import kopf

    RESOURCE = ("s3.ovh-operator.dev", "v1alpha1", "ovhobjectstorageusers")


    @kopf.on.startup()
    def configure(settings: kopf.OperatorSettings, **_):
        settings.networking.error_backoffs = [0.1, 0.2, 0.5]
        settings.watching.reconnect_backoff = 0.1
        settings.batching.batch_window = 0.05
        settings.batching.idle_timeout = 1.0
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage()
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage()


    @kopf.on.create(*RESOURCE, backoff=0.2)
    def created(body, patch, **_):
        patch.status["username"] = "created-by-kopf"
        kopf.info(body, reason="Created", message="created by the tiny operator")


    @kopf.on.update(*RESOURCE, field="spec", backoff=0.2)
    def updated(status, patch, **_):
        patch.status["userId"] = int(status.get("userId") or 0) + 1


    @kopf.on.delete(*RESOURCE, backoff=0.2)
    async def deleted(name, **_):
        await asyncio.sleep(0.2)
        pathlib.Path(os.environ["MARKER_DIR"], f"deleted-{name}").write_text("done")
"""


def test_kopf_operator_end_to_end(
    kubeconfig: pathlib.Path,
    custom: kubernetes.client.CustomObjectsApi,
    core: kubernetes.client.CoreV1Api,
    ns: str,
    tmp_path: pathlib.Path,
) -> None:
    (tmp_path / "tiny.py").write_text(textwrap.dedent(TINY_OPERATOR))
    log_path = tmp_path / "kopf.log"
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "MARKER_DIR": str(tmp_path)}
    command = [sys.executable, "-m", "kopf", "run", "--standalone", "--all-namespaces", "--verbose", "tiny.py"]
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:

        def get() -> dict[str, Any]:
            obj: dict[str, Any] = custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "e2e")
            return obj

        def status_of(field: str) -> Any:
            return get().get("status", {}).get(field)

        try:
            custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, osu("e2e"))
            assert wait_for(lambda: status_of("username"), what="on.create") == "created-by-kopf"
            finalizers = get()["metadata"].get("finalizers")
            assert finalizers == ["kopf.zalando.org/KopfFinalizerMarker"]
            custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "e2e", {"spec": {"region": "gra"}})
            assert wait_for(lambda: status_of("userId"), what="on.update") == 1
            uid = get()["metadata"]["uid"]
            custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "e2e")

            def gone() -> bool:
                try:
                    get()
                except kubernetes.client.ApiException as exc:
                    return exc.status == 404
                return False

            wait_for(gone, what="the finalizer release")
            assert (tmp_path / "deleted-e2e").read_text() == "done"

            def kopf_events() -> list[str]:
                events = core.list_namespaced_event(ns, field_selector=f"involvedObject.uid={uid}").items
                return [event.reason for event in events if event.message == "created by the tiny operator"]

            assert wait_for(kopf_events, what="the event kopf posts") == ["Created"]
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- kopf log ---\n{log_path.read_text()[-5000:]}") from exc
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# ------------------------------------------------------------------------------------ OpenAPI, kubectl


def test_openapi_documents(http: Http) -> None:
    index = http.json("GET", "/openapi/v3")["paths"]
    assert {"api/v1", f"apis/{API_VERSION}", "apis/rbac.authorization.k8s.io/v1"} <= set(index)
    document = http.json("GET", index[f"apis/{API_VERSION}"]["serverRelativeURL"])
    schema = document["components"]["schemas"][f"dev.ovh-operator.s3.{VERSION}.{KIND}"]
    assert schema["x-kubernetes-group-version-kind"] == [{"group": GROUP, "kind": KIND, "version": VERSION}]
    patch = document["paths"][f"/apis/{API_VERSION}/namespaces/{{namespace}}/{PLURAL}/{{name}}"]["patch"]
    assert "fieldValidation" in {p["name"] for p in patch["parameters"]}
    assert STRATEGIC not in patch["requestBody"]["content"]  # kubectl apply then sends a merge patch
    v2 = http.json("GET", "/openapi/v2")
    assert "io.k8s.api.core.v1.Secret" in v2["definitions"]
    proto = http.request("GET", "/openapi/v2", headers={"Accept": "application/com.github.proto-openapi.spec.v2"
                                                                   "@v1.0+protobuf"})
    assert proto.headers["Content-Type"].startswith("application/com.github.proto-openapi") and proto.content[:5]


def test_kubectl_validates_explains_and_edits(kubeconfig: pathlib.Path, emulator: KubeEmulator, ns: str,
                                              tmp_path: pathlib.Path) -> None:
    example = yaml.safe_load((CRD_PATH.parents[1] / "examples" / "backup-writer.yaml").read_text())
    example["metadata"]["namespace"] = ns
    manifest = tmp_path / "osu.yaml"
    manifest.write_text(yaml.safe_dump(example))
    assert "created" in kubectl(kubeconfig, "apply", "-f", str(manifest))  # validated, no --validate=false
    example["spec"]["regoin"] = "sbg"
    manifest.write_text(yaml.safe_dump(example))
    refused = kubectl(kubeconfig, "apply", "-f", str(manifest), check=False)
    assert 'strict decoding error: unknown field "spec.regoin"' in refused
    warned = kubectl(kubeconfig, "apply", "--validate=warn", "-f", str(manifest))
    assert 'Warning: unknown field "spec.regoin"' in warned
    explained = kubectl(kubeconfig, "explain", "osu.spec.grants")
    assert "Bucket access to grant. Compiled into an S3 policy." in explained and "prefix\t<string>" in explained
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "EDITOR": "sed -i s/region:.gra/region:\\ waw/"}
    subprocess.run(["kubectl", "edit", "-n", ns, "osu", "backup-writer"], env=env, check=True, capture_output=True,
                   timeout=60)
    assert (emulator.get_object(API_VERSION, PLURAL, ns, "backup-writer") or {})["spec"]["region"] == "waw"
