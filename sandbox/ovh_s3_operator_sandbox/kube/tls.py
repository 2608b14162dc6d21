"""HTTPS for the emulator: a throwaway certificate authority and a serving certificate for 127.0.0.1.

kubectl (client-go's ``clientcmd``, ``isConfigTransportTLS``) sends a kubeconfig's credentials only
over TLS, so an API server that authenticates must serve HTTPS, as kube-apiserver does. Each
emulator makes its own CA (P-256 keys, valid one day); kubeconfigs carry it as
``certificate-authority-data``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import ipaddress
import os
import ssl
import tempfile
from typing import Any

import aiohttp.test_utils
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclasses.dataclass(frozen=True)
class Certificates:
    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        # load_cert_chain reads files only: a private temporary file, removed at once.
        fd, path = tempfile.mkstemp(suffix=".pem")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(self.cert_pem + self.ca_pem + self.key_pem)
            context.load_cert_chain(path)
        finally:
            os.unlink(path)
        return context


def make_certificates(host: str = "127.0.0.1", server: str = "kube-apiserver") -> Certificates:
    """A CA (named after ``server``) and a certificate for ``server`` at ``host`` (and localhost)."""
    now = datetime.datetime.now(datetime.UTC)
    validity = (now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1))
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{server}-sandbox-ca")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(validity[0]).not_valid_after(validity[1])
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    try:
        names.append(x509.IPAddress(ipaddress.ip_address(host)))
    except ValueError:
        names.append(x509.DNSName(host))
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, server)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(validity[0]).not_valid_after(validity[1])
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return Certificates(ca.public_bytes(pem), cert.public_bytes(pem), key_pem)


class TLSServer(aiohttp.test_utils.RawTestServer):
    """aiohttp's raw server (what kmock serves with), over TLS."""

    ssl_context: ssl.SSLContext | None = None

    def __init__(self, handler: Any, **kwargs: Any) -> None:
        super().__init__(handler, scheme="https", **kwargs)

    async def start_server(self, loop: asyncio.AbstractEventLoop | None = None, **kwargs: Any) -> None:
        await super().start_server(loop=loop, ssl=self.ssl_context, **kwargs)


def tls_server_class(context: ssl.SSLContext) -> type[TLSServer]:
    return type("BoundTLSServer", (TLSServer,), {"ssl_context": context})
