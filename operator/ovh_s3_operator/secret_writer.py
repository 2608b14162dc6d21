"""Render and apply the Secret that carries a resource's S3 credentials.

The Secret is owned by the resource (ownerReference, so it goes with it) and labelled as managed by
the operator. Its shape comes from ``spec.secret`` (:class:`Shape`): the four default keys (which may
be renamed), COSI's keys on request, and keys rendered from templates (:mod:`.secret_template`).
The operator owns the Secret's whole data, as external-secrets does with its target: a key it does not
write (renamed, a template entry removed, added by someone else) is removed. Of the labels and
annotations, it adds its own and those of the spec, removes those it added before and the spec no
longer has, and leaves the others alone.

Two annotations let it tell what the Secret holds without asking OVH for the secret again:
``credentials-digest``, a SHA-256 digest of the access key and secret, and ``rendered``
(:class:`Record`): which keys hold the access key and the secret, a digest of what the data was
rendered from and one of the data itself, and the labels and annotations it took from the spec. A
Secret whose data still matches its record and whose inputs have not changed is up to date; one
whose credentials are intact is re-rendered from them, whatever else changed.

Ownership is decided on the Secret's metadata alone: a Secret the resource does not own is never
read whole, never changed and never deleted.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import InvalidSpec, KubeAlreadyExists, KubeConflict, SecretConflict
from .model import GROUP, MANAGED_BY_LABEL, Resource, SecretFormat, Spec
from .ports import Kube
from .secret_template import TemplateProblem, compile_template, render

ACCESS_KEY = "AWS_ACCESS_KEY_ID"
SECRET_KEY = "AWS_SECRET_ACCESS_KEY"  # noqa: S105 - a key name
ENDPOINT_KEY = "AWS_ENDPOINT_URL"
REGION_KEY = "AWS_REGION"
MANAGED_BY = "ovh-s3-operator"
OWNER_LABEL = f"{GROUP}/owner"
DIGEST_ANNOTATION = f"{GROUP}/credentials-digest"
RECORD_ANNOTATION = f"{GROUP}/rendered"
DATA_LIMIT = 512 * 1024
"""The most bytes of data the operator writes into one Secret (Kubernetes allows 1 MiB)."""

# COSI's names for S3. The Secret of a COSI BucketAccess holds, in v1alpha2, COSI_PROTOCOL, BUCKET_NAME,
# AWS_ENDPOINT_URL, AWS_DEFAULT_REGION, AWS_S3_ADDRESSING_STYLE, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY
# (kubernetes-sigs/container-object-storage-interface, client/apis/objectstorage/v1alpha2/protocols.go),
# and in v1alpha1 one key, BucketInfo, holding a BucketInfo object as JSON
# (kubernetes-sigs/container-object-storage-interface-api, apis/bucket_info.go; the provisioner sidecar
# writes it under the key "BucketInfo").
COSI_KEYS = ("COSI_PROTOCOL", "BUCKET_NAME", "AWS_DEFAULT_REGION", "AWS_S3_ADDRESSING_STYLE", "BucketInfo")
DEFAULT_KEYS = {"accessKeyId": ACCESS_KEY, "secretAccessKey": SECRET_KEY, "endpoint": ENDPOINT_KEY,
                "region": REGION_KEY}
"""The default key of each field of spec.secret.keys."""
COSI_FIXED_KEYS = ("accessKeyId", "secretAccessKey", "endpoint")
"""The fields of spec.secret.keys whose default keys COSI reads under these very names."""
COSI_ADDRESSING_STYLE = "path"
"""OVH serves both styles; path style also works with bucket names that contain dots."""

_PLACEHOLDER_CREDENTIALS = ("0" * 32, "0" * 32)
"""What a validation render uses instead of the access key and the secret."""


def endpoint_url(region: str) -> str:
    return f"https://s3.{region}.io.cloud.ovh.net"


def digest(access: str, secret: str) -> str:
    return "sha256:" + hashlib.sha256(f"{access}\0{secret}".encode()).hexdigest()


def _json_digest(value: Any) -> str:
    return "sha256:" + hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _decode(data: Mapping[str, str] | None) -> dict[str, str]:
    out = {}
    for key, value in (data or {}).items():
        try:
            out[key] = base64.b64decode(value).decode()
        except (ValueError, UnicodeDecodeError):
            out[key] = ""
    return out


def _encode(values: Mapping[str, str]) -> dict[str, str]:
    return {key: base64.b64encode(value.encode()).decode() for key, value in values.items()}


def owned_by(metadata: Mapping[str, Any], resource: Resource) -> bool:
    return any(ref.get("uid") == resource.uid and ref.get("controller")
               for ref in metadata.get("ownerReferences") or ())


def default_name(resource: Resource) -> str:
    return f"{resource.name}-s3"


def _own_labels(name: str) -> dict[str, str]:
    labels = {MANAGED_BY_LABEL: MANAGED_BY}
    if len(name) <= 63:
        labels[OWNER_LABEL] = name
    return labels


# --- the shape: what the Secret holds besides the credentials ------------------------------------


@dataclass(frozen=True)
class Shape:
    """The Secret's keys, rendered values and metadata, from the spec (validated: see :func:`shape`) and
    the resource; :meth:`for_user` adds the OVH user, which templates may show."""

    access_key: str
    secret_key: str
    endpoint_key: str
    region_key: str
    cosi: bool
    templates: tuple[tuple[str, str], ...]
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    endpoint: str
    region: str
    buckets: tuple[str, ...]
    namespace: str
    name: str
    user_id: int = 0
    username: str = ""

    def for_user(self, user_id: int | None, username: str | None) -> Shape:
        return dataclasses.replace(self, user_id=user_id or 0, username=username or "")

    @property
    def inputs(self) -> str:
        """A digest of everything the data is rendered from, except the credentials."""
        fields = dataclasses.asdict(self)
        del fields["labels"], fields["annotations"]
        return _json_digest(fields)

    def values(self, access: str, secret: str) -> dict[str, str]:
        """The Secret's data, rendered; InvalidSpec (never quoting a value) if a template fails."""
        values = {self.access_key: access, self.secret_key: secret, self.endpoint_key: self.endpoint,
                  self.region_key: self.region}
        if self.cosi:
            values |= dict(zip(COSI_KEYS, self._cosi(access, secret), strict=True))
        variables = {"accessKeyId": access, "secretAccessKey": secret, "endpoint": self.endpoint,
                     "region": self.region, "buckets": list(self.buckets), "userId": self.user_id,
                     "username": self.username, "namespace": self.namespace, "name": self.name}
        for entry, source in self.templates:
            try:
                values[entry] = render(compile_template(source), variables)
            except TemplateProblem as problem:
                raise InvalidSpec(f"{problem.describe(entry)}; fix the template") from None
        if sum(len(key) + len(value.encode()) for key, value in values.items()) > DATA_LIMIT:
            raise InvalidSpec(f"spec.secret.template: the Secret would hold more than {DATA_LIMIT // 1024} KiB; "
                              "shorten the templates")
        return values

    def _cosi(self, access: str, secret: str) -> tuple[str, ...]:
        bucket = self.buckets[0]
        bucket_info = {"metadata": {"name": self.name}, "spec": {
            "bucketName": bucket, "authenticationType": "Key", "protocols": ["S3"], "secretAzure": None,
            "secretS3": {"endpoint": self.endpoint, "region": self.region, "accessKeyID": access,
                         "accessSecretKey": secret}}}
        return "S3", bucket, self.region, COSI_ADDRESSING_STYLE, json.dumps(bucket_info)

    @property
    def all_labels(self) -> dict[str, str]:
        """The spec's labels and the operator's own."""
        return {**self.labels, **_own_labels(self.name)}


def shape(spec: Spec, resource: Resource, region: str) -> Shape:
    """The Secret's shape for this spec; InvalidSpec, naming the field, if the Secret cannot be written
    as asked (names that collide, a template that does not compile or render)."""
    wanted = spec.secret
    cosi = wanted.format is SecretFormat.COSI
    renamed = wanted.keys.model_dump(by_alias=True)
    if cosi:
        changed = [field for field in COSI_FIXED_KEYS if renamed[field] not in (None, DEFAULT_KEYS[field])]
        if changed:
            fixed = ", ".join(DEFAULT_KEYS[field] for field in COSI_FIXED_KEYS)
            raise InvalidSpec(f"{', '.join(f'spec.secret.keys.{field}' for field in changed)}: format COSI reads "
                              f"{fixed} under these names; remove the renaming or use format Default")
        if not spec.grants:
            raise InvalidSpec("spec.secret.format: COSI needs a bucket for BUCKET_NAME (the bucket of spec.grants[0]); "
                              "add spec.grants or use format Default")
    keys = {field: renamed[field] or default for field, default in DEFAULT_KEYS.items()}
    taken: dict[str, str] = {}
    for field, key in keys.items():
        where = f"spec.secret.keys.{field}"
        if key in taken:
            raise InvalidSpec(f"{where}: the key {key} is also {taken[key]}; give each value its own key")
        if cosi and key in COSI_KEYS:
            raise InvalidSpec(f"{where}: format COSI writes the key {key} itself; choose another name")
        taken[key] = where
    for entry in wanted.template:
        if entry in taken or (cosi and entry in COSI_KEYS):
            holder = taken.get(entry, "written by format COSI")
            raise InvalidSpec(f"spec.secret.template.{entry}: the key {entry} is already {holder}; "
                              "give the template entry another name")
    result = Shape(
        access_key=keys["accessKeyId"], secret_key=keys["secretAccessKey"], endpoint_key=keys["endpoint"],
        region_key=keys["region"], cosi=cosi, templates=tuple(sorted(wanted.template.items())),
        labels=dict(wanted.labels), annotations=dict(wanted.annotations), endpoint=endpoint_url(region),
        region=region, buckets=tuple(dict.fromkeys(grant.bucket for grant in spec.grants)),
        namespace=resource.namespace, name=resource.name)
    # Render once with placeholder credentials: what would fail later fails now, before anything is created.
    result.for_user(resource.status.user_id, resource.status.username).values(*_PLACEHOLDER_CREDENTIALS)
    return result


# --- what the Secret holds ---------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """The annotation ``rendered``: what the operator last wrote into the Secret (no value, only names
    and digests). A Secret without it (written by an earlier version) has the default keys."""

    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    inputs: str = ""
    data: str = ""
    labels: tuple[str, ...] = ()
    annotations: tuple[str, ...] = ()

    def to_annotation(self) -> str:
        return json.dumps({"accessKeyId": self.access_key, "secretAccessKey": self.secret_key, "inputs": self.inputs,
                           "data": self.data, "labels": list(self.labels), "annotations": list(self.annotations)},
                          separators=(",", ":"))

    @classmethod
    def parse(cls, text: str | None) -> Record:
        try:
            raw = json.loads(text or "")
            record = cls(access_key=raw["accessKeyId"], secret_key=raw["secretAccessKey"], inputs=raw["inputs"],
                         data=raw["data"], labels=tuple(raw["labels"]), annotations=tuple(raw["annotations"]))
        except (ValueError, TypeError, KeyError):
            return cls()
        fields = (record.access_key, record.secret_key, record.inputs, record.data, *record.labels,
                  *record.annotations)
        return record if all(isinstance(field, str) for field in fields) else cls()


@dataclass(frozen=True)
class ObservedSecret:
    """What the operator needs to know about its Secret (never the secret itself)."""

    uid: str
    resource_version: str
    access: str | None
    intact: bool
    """The Secret still holds the access key and secret the operator wrote, where its record says."""
    data_digest: str
    record: Record
    keys: frozenset[str]
    labels: Mapping[str, str]
    annotations: Mapping[str, str]

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> ObservedSecret:
        meta = body.get("metadata") or {}
        annotations = dict(meta.get("annotations") or {})
        data = dict(body.get("data") or {})
        record = Record.parse(annotations.get(RECORD_ANNOTATION))
        access, secret = _credentials(data, record)
        intact = bool(access and secret and annotations.get(DIGEST_ANNOTATION) == digest(access, secret))
        return cls(uid=str(meta.get("uid") or ""), resource_version=str(meta.get("resourceVersion") or ""),
                   access=access, intact=intact, data_digest=_json_digest(data), record=record,
                   keys=frozenset(data), labels=dict(meta.get("labels") or {}), annotations=annotations)

    def up_to_date(self, access: str | None, target: Shape) -> bool:
        """Holds ``access`` intact and exactly what ``target`` renders to, with its labels and annotations."""
        wanted = Record(target.access_key, target.secret_key, target.inputs, self.data_digest,
                        tuple(sorted(target.labels)), tuple(sorted(target.annotations)))
        return (self.intact and access is not None and self.access == access and self.record == wanted
                and all(self.labels.get(key) == value for key, value in target.all_labels.items())
                and all(self.annotations.get(key) == value for key, value in target.annotations.items()))


def _credentials(data: Mapping[str, str], record: Record) -> tuple[str | None, str | None]:
    values = _decode({key: data[key] for key in (record.access_key, record.secret_key) if key in data})
    return values.get(record.access_key) or None, values.get(record.secret_key) or None


def _conflict(resource: Resource, name: str) -> SecretConflict:
    return SecretConflict(
        f"Secret {name} already exists in namespace {resource.namespace} and is not owned by this "
        "resource; the operator leaves it untouched. Choose another spec.secret.name or delete that Secret"
    )


async def _owned_metadata(kube: Kube, resource: Resource, name: str) -> Mapping[str, Any] | None:
    """The Secret's metadata, None if absent; SecretConflict if it belongs to something else."""
    meta = await kube.read_secret_metadata(resource.namespace, name)
    if meta is None:
        return None
    metadata: Mapping[str, Any] = meta.get("metadata") or {}
    if not owned_by(metadata, resource):
        raise _conflict(resource, name)
    return metadata


async def _owned_body(kube: Kube, resource: Resource, name: str) -> Mapping[str, Any] | None:
    """The whole Secret, read only once its metadata showed it ours; None if it is gone or no longer ours."""
    body = await kube.read_secret(resource.namespace, name)
    return body if body is not None and owned_by(body.get("metadata") or {}, resource) else None


async def observe(kube: Kube, resource: Resource, name: str,
                  known: ObservedSecret | None = None) -> ObservedSecret | None:
    """The Secret as it is, None if absent; SecretConflict if it belongs to something else.

    ``known`` is what an earlier call observed: if the Secret has not changed since (same
    resourceVersion), its data is not read again.
    """
    metadata = await _owned_metadata(kube, resource, name)
    if metadata is None:
        return None
    if known is not None and known.resource_version == metadata.get("resourceVersion") \
            and known.uid == metadata.get("uid"):
        return known
    body = await _owned_body(kube, resource, name)
    return None if body is None else ObservedSecret.from_body(body)


async def _read_back(kube: Kube, resource: Resource, name: str, access: str) -> tuple[ObservedSecret, str]:
    """The Secret as it is now and the secret it holds intact for ``access``, wherever its keys are."""
    ours = await _owned_metadata(kube, resource, name) is not None
    body = await _owned_body(kube, resource, name) if ours else None
    if body is not None:
        observed = ObservedSecret.from_body(body)
        secret = _credentials(body.get("data") or {}, observed.record)[1]
        if observed.intact and observed.access == access and secret is not None:
            return observed, secret
    raise KubeConflict(f"Secret {resource.namespace}/{name} changed while the operator rewrote it; retrying")


async def write(kube: Kube, resource: Resource, name: str, existing: ObservedSecret | None, target: Shape, *,
                access: str, secret: str | None) -> ObservedSecret:
    """Create the Secret, or bring it to exactly ``target``'s data; returns what it now holds.

    ``secret`` may be None only when ``existing`` holds ``access`` and its secret intact: the secret is
    then read back from the Secret (wherever its record says it is) to render the new data.
    """
    if secret is None:
        existing, secret = await _read_back(kube, resource, name, access)
    values = _encode(target.values(access, secret))
    record = Record(target.access_key, target.secret_key, target.inputs, _json_digest(values),
                    tuple(sorted(target.labels)), tuple(sorted(target.annotations)))
    labels = target.all_labels
    annotations = {**target.annotations, DIGEST_ANNOTATION: digest(access, secret),
                   RECORD_ANNOTATION: record.to_annotation()}
    if existing is None:
        body = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "data": values, "metadata": {
            "name": name, "namespace": resource.namespace, "labels": labels, "annotations": annotations,
            "ownerReferences": [resource.owner_reference()]}}
        try:
            return ObservedSecret.from_body(await kube.create_secret(resource.namespace, body))
        except KubeAlreadyExists:
            # Created meanwhile (e.g. by an earlier attempt): only take it over if it is ours.
            existing = await observe(kube, resource, name)
            if existing is None:
                raise
    metadata = {"ownerReferences": [resource.owner_reference()],
                "labels": {**dict.fromkeys(existing.record.labels), **labels},
                "annotations": {**dict.fromkeys(existing.record.annotations), **annotations}}
    patch = {"metadata": metadata, "data": {**dict.fromkeys(existing.keys), **values}}
    # What the answer holds, not what was sent: a key someone added meanwhile is still there, and is removed
    # on the next reconcile (the data no longer matches the record).
    return ObservedSecret.from_body(await kube.patch_secret(resource.namespace, name, patch))


async def delete_if_owned(kube: Kube, resource: Resource, name: str) -> bool:
    """Delete a Secret the resource used before (spec.secret.name changed), if it still owns it."""
    meta = await kube.read_secret_metadata(resource.namespace, name)
    metadata = (meta or {}).get("metadata") or {}
    if meta is None or not owned_by(metadata, resource):
        return False
    await kube.delete_secret(resource.namespace, name, str(metadata.get("uid") or ""))
    return True
