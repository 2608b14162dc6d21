"""The official kubernetes client talking to the emulator in-process, without a socket.

:func:`api_client` returns a ``kubernetes.client.ApiClient`` whose connection pool hands every
request to :meth:`.server.KubeEmulator.handle`: the client's own serialization, headers and error
mapping run unchanged, the emulator's semantics apply unchanged, and a call takes microseconds.
Watches are not served this way (the operator's watches come from kopf, over HTTP).
"""

from __future__ import annotations

import urllib.parse
from typing import Any

import kubernetes
import urllib3
from multidict import CIMultiDict

from .server import KubeEmulator, KubeRequest

IN_PROCESS_URL = "http://kube-sandbox.invalid"


class InProcessPool:
    """Stands in for urllib3's PoolManager inside the kubernetes client."""

    def __init__(self, emulator: KubeEmulator) -> None:
        self._emulator = emulator

    def request(self, method: str, url: str, body: Any = None, fields: Any = None, headers: Any = None,
                **_: Any) -> urllib3.HTTPResponse:
        split = urllib.parse.urlsplit(url)
        query = dict(urllib.parse.parse_qsl(split.query, keep_blank_values=True))
        data = body.encode() if isinstance(body, str) else (body or b"")
        request_headers: CIMultiDict[str] = CIMultiDict(headers or {})
        answer = self._emulator.handle(KubeRequest(method.upper(), split.path, query, request_headers, data))
        return urllib3.HTTPResponse(body=answer.body, status=answer.status, preload_content=False,
                                    headers={"Content-Type": answer.content_type, **dict(answer.headers)}, reason=None)

    def clear(self) -> None:
        pass


def api_client(emulator: KubeEmulator, token: str | None = None) -> kubernetes.client.ApiClient:
    """A kubernetes client for the emulator, in-process, authenticated with ``token`` (default: the admin's;
    see :meth:`.server.KubeEmulator.service_account_token` for others)."""
    configuration = kubernetes.client.Configuration(host=IN_PROCESS_URL)
    configuration.api_key = {"BearerToken": token if token is not None else emulator.admin_token}
    configuration.api_key_prefix = {"BearerToken": "Bearer"}
    client = kubernetes.client.ApiClient(configuration)
    client.rest_client.pool_manager = InProcessPool(emulator)  # type: ignore[assignment]
    return client
