"""TLS for the HTTP server, and mutual TLS: a client certificate's subject as an API client's identity.

From the settings (`tls_certificate` and `tls_key`, optionally `tls_client_ca`) come uvicorn's TLS options.
With a client CA the server asks every client for a certificate but does not insist (`CERT_OPTIONAL`): a client
that presents none still connects and may authenticate with a bearer token, while a certificate that is
presented must chain to the client CA or the handshake fails. `CERT_REQUIRED` would lock out every
bearer-token client on the same port; the decision whether an unauthenticated request may pass stays with the
app, which sees the verified subject (or None) through `client_certificate_subject`.

uvicorn does not put the peer certificate into the ASGI scope, so `TlsHttpProtocol` (uvicorn's h11 protocol,
chosen with `http=`) wraps the app per connection and gives each request the ASGI TLS extension
(https://asgi.readthedocs.io/en/latest/specs/tls.html) in `scope["extensions"]["tls"]`.

The minimum protocol version is TLS 1.2, set on uvicorn's context through its `ssl_context_factory` hook (Python
already defaults to it; the hook makes it explicit and independent of the OpenSSL build), with Python's default
cipher list: forward-secret suites only (ECDHE/DHE), no SHA-1, RC4 or 3DES. TLS 1.3 is negotiated whenever both
ends speak it; 1.3 alone would shut out clients on older Java runtimes and TLS-terminating proxies that are
still common next to the national platform.
"""

import datetime
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn, cast

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from uvicorn.protocols.http.h11_impl import H11Protocol

from importer.config import ConfigurationError, Settings
from importer.logs import get_logger

if TYPE_CHECKING:
    import asyncio

    import uvicorn
    from uvicorn._types import ASGI3Application, ASGIReceiveCallable, ASGISendCallable, Scope

log = get_logger(__name__)

MINIMUM_TLS_VERSION = ssl.TLSVersion.TLSv1_2
# ssl.SSLObject.version() -> the ASGI extension's `tls_version`, the protocol's wire number.
TLS_VERSION_NUMBERS = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


@dataclass(frozen=True)
class TlsOptions:
    """The server's certificate and key (PEM paths) and, for mutual TLS, the CA its clients' certificates chain to.

    `sources` says where each setting came from, for error messages ("$STAMDATA_TLS_KEY", a file's path).
    """

    certificate: str
    key: str
    client_ca: str = ""
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def asks_for_client_certificates(self) -> bool:
        return bool(self.client_ca)

    def check(self) -> None:
        """Every file readable and what it should be, the key the certificate's: a ConfigurationError (exit 2)
        naming the setting and the file now, rather than a traceback in the server thread."""
        certificate = self._read("tls_certificate", self.certificate)
        key = self._read("tls_key", self.key)
        try:
            certificates = x509.load_pem_x509_certificates(certificate)
        except ValueError:
            self._fail("tls_certificate", self.certificate, "holds no PEM certificate")
        try:
            serialization.load_pem_private_key(key, password=None)
        except TypeError:
            self._fail("tls_key", self.key, "is encrypted; the server needs the key unencrypted (readable by it only)")
        except (ValueError, UnsupportedAlgorithm) as error:
            self._fail("tls_key", self.key, f"is not a PEM private key ({error})")
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(self.certificate, self.key, password=lambda: b"")
        except ssl.SSLError as error:
            self._fail("tls_key", self.key, f"does not belong to the certificate in {self.certificate} ({error})")
        now = datetime.datetime.now(datetime.UTC)
        if certificates[0].not_valid_after_utc < now:
            log.warning("the TLS certificate has expired", certificate=self.certificate,
                        not_valid_after=certificates[0].not_valid_after_utc.isoformat())
        if self.client_ca:
            authorities = self._read("tls_client_ca", self.client_ca)
            try:
                x509.load_pem_x509_certificates(authorities)
                ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_verify_locations(cadata=authorities.decode("ascii"))
            except (ValueError, ssl.SSLError) as error:
                self._fail("tls_client_ca", self.client_ca, f"holds no usable PEM CA certificate ({error})")

    def uvicorn_options(self) -> dict[str, Any]:
        """Keyword arguments for uvicorn.Config: the files, client certificates asked for (see the module's
        docstring) or not, TLS 1.2 at least, and the protocol class that hands the peer's subject to the app."""
        return {
            "ssl_certfile": self.certificate,
            "ssl_keyfile": self.key,
            "ssl_ca_certs": self.client_ca or None,
            "ssl_cert_reqs": ssl.CERT_OPTIONAL if self.client_ca else ssl.CERT_NONE,
            "ssl_context_factory": tightened_context,
            "http": TlsHttpProtocol,
        }

    def describe(self) -> dict[str, Any]:
        """For the start-up log line."""
        return {"tls": True, "client_certificates": f"asked for, from {self.client_ca}" if self.client_ca else "no"}

    def _read(self, key: str, path: str) -> bytes:
        try:
            with open(path, "rb") as file:
                return file.read()
        except OSError as error:
            self._fail(key, path, f"cannot be read ({error.strerror or error})")

    def _fail(self, key: str, path: str, rule: str) -> NoReturn:
        raise ConfigurationError(key, path, self.sources.get(key, "the defaults"), rule)


def tls_options(settings: Settings) -> TlsOptions | None:
    """The settings' TLS options, None for plain HTTP (the configuration has checked that the files go together)."""
    if not settings.tls_certificate:
        return None
    return TlsOptions(settings.tls_certificate, settings.tls_key, settings.tls_client_ca, settings.sources)


def tightened_context(_config: "uvicorn.Config", default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    """uvicorn's context from the options above, with the minimum protocol version raised to TLS 1.2."""
    context = default()
    context.minimum_version = MINIMUM_TLS_VERSION
    return context


def client_certificate_subject(scope: Mapping[str, Any]) -> str | None:
    """The RFC 4514 subject of the client certificate this request's connection presented and the client CA
    verified; None without one (plain HTTP, TLS without a client CA, or a client that presented none), and for
    a certificate with an empty subject, which identifies no one."""
    tls = (scope.get("extensions") or {}).get("tls") or {}
    name = tls.get("client_cert_name")
    return name if isinstance(name, str) and name else None


def connection_tls(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> dict[str, Any]:
    """The ASGI TLS extension of one connection, its handshake done.

    A peer certificate only counts when the server asked for one with a CA to verify it against: then the
    handshake has failed for any certificate that does not chain to that CA, so one that is here is verified
    (`client_cert_error` stays None). Python's ssl (before 3.13) exposes the peer's own certificate but not its
    intermediates, so the chain holds the client certificate alone, as the extension allows. `server_cert` is
    left out (optional; None).
    """
    name: str | None = None
    chain: list[str] = []
    peer = ssl_object.getpeercert(binary_form=True) if ssl_object.context.verify_mode != ssl.CERT_NONE else None
    if peer:
        certificate = x509.load_der_x509_certificate(peer)
        name = certificate.subject.rfc4514_string()
        chain = [certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")]
    cipher = ssl_object.cipher()
    return {
        "server_cert": None,
        "client_cert_chain": chain,
        "client_cert_name": name,
        "client_cert_error": None,
        "tls_version": TLS_VERSION_NUMBERS.get(ssl_object.version() or ""),
        "cipher_suite": cipher_suite_number(ssl_object.context, cipher[0]) if cipher else None,
    }


def cipher_suite_number(context: ssl.SSLContext, name: str) -> int | None:
    """The IANA number of a cipher suite OpenSSL names `name` (OpenSSL's id carries it in its low 16 bits)."""
    for cipher in context.get_ciphers():
        if cipher["name"] == name:
            return int(cipher["id"]) & 0xFFFF
    return None


class TlsHttpProtocol(H11Protocol):
    """uvicorn's h11 HTTP protocol, giving each request on a TLS connection the ASGI TLS extension.

    One instance serves one connection, and asyncio calls `connection_made` once the handshake is done, so the
    peer certificate is read once per connection and the app is wrapped for that connection's requests only.
    h11 is what uvicorn's "auto" picks here (httptools is not installed); WebSocket upgrades, which the importer
    does not serve, would bypass the wrapper.
    """

    def connection_made(self, transport: "asyncio.Transport") -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        if isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
            self.app = with_tls_extension(self.config.loaded_app, connection_tls(ssl_object))


def with_tls_extension(app: "ASGI3Application", tls: dict[str, Any]) -> "ASGI3Application":
    """`app`, each request's scope given `tls` as its `extensions["tls"]`."""

    def call(scope: "Scope", receive: "ASGIReceiveCallable", send: "ASGISendCallable") -> Awaitable[None]:
        request = cast(dict[str, Any], scope)  # this request's own scope, built by the protocol for it
        request["extensions"] = {**(request.get("extensions") or {}), "tls": tls}
        return app(scope, receive, send)

    return call
