"""HTTPS and mutual TLS over real sockets: the server's certificate and key, a client CA whose certificates
identify clients (their subject reaches the app through the ASGI TLS extension), bearer-token clients without
a certificate still welcome, a certificate from elsewhere refused at the handshake, and bad files refused at
start with exit 2."""

import os
import signal
import ssl
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI, Request

from importer.config import ConfigurationError
from importer.http.app import WebServer
from importer.http.tls import TlsOptions, client_certificate_subject, tls_options
from tests.conftest import REPO, Databases, run_cli
from tests.daemon.harness import free_port, wait_for
from tests.http.certificates import CertificateAuthority, Issued, client_context


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    return CertificateAuthority(tmp_path_factory.mktemp("pki"), "Clients CA")


@pytest.fixture(scope="module")
def server_certificate(authority: CertificateAuthority) -> Issued:
    return authority.issue_server()


def echo_app() -> FastAPI:
    app = FastAPI()

    @app.get("/whoami")
    async def whoami(request: Request) -> dict[str, Any]:
        tls = request.scope.get("extensions", {}).get("tls")
        return {"subject": client_certificate_subject(request.scope), "tls": tls, "scheme": request.url.scheme}

    return app


@contextmanager
def serving(tls: TlsOptions | None) -> Iterator[tuple[WebServer, str]]:
    port = free_port()
    web = WebServer(echo_app(), f"127.0.0.1:{port}", tls)
    web.start()
    try:
        yield web, f"https://127.0.0.1:{port}"
    finally:
        web.stop()


def whoami(base: str, context: ssl.SSLContext) -> dict[str, Any]:
    with httpx.Client(verify=context, timeout=5) as client:
        response = client.get(f"{base}/whoami")
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_tls_alone_serves_https_and_names_no_client(authority: CertificateAuthority, server_certificate: Issued
                                                     ) -> None:
    with serving(TlsOptions(str(server_certificate.certificate), str(server_certificate.key))) as (web, base):
        answer = whoami(base, client_context(authority))
        assert answer["scheme"] == "https" and answer["subject"] is None
        assert answer["tls"]["tls_version"] == 0x0304 and isinstance(answer["tls"]["cipher_suite"], int)
        assert answer["tls"]["client_cert_chain"] == []
        # Not asked for, a certificate the client holds is not sent, and would not count.
        assert whoami(base, client_context(authority, authority.issue_client("Unasked")))["subject"] is None
        assert web.server.config.ssl is not None
        assert web.server.config.ssl.minimum_version == ssl.TLSVersion.TLSv1_2
        assert web.server.config.ssl.verify_mode == ssl.CERT_NONE


@pytest.fixture
def mutual(authority: CertificateAuthority, server_certificate: Issued) -> Iterator[str]:
    tls = TlsOptions(str(server_certificate.certificate), str(server_certificate.key), str(authority.path))
    with serving(tls) as (web, base):
        assert web.server.config.ssl is not None and web.server.config.ssl.verify_mode == ssl.CERT_OPTIONAL
        yield base


def test_mutual_tls_names_the_client_by_its_certificate_subject(authority: CertificateAuthority, mutual: str) -> None:
    client = authority.issue_client("Region Syddanmark FMK-opslag", "Region Syddanmark")
    answer = whoami(mutual, client_context(authority, client))
    assert client.subject == "CN=Region Syddanmark FMK-opslag,O=Region Syddanmark,C=DK"
    assert answer["subject"] == client.subject
    assert answer["tls"]["client_cert_name"] == client.subject and answer["tls"]["client_cert_error"] is None
    assert [chain.strip() for chain in answer["tls"]["client_cert_chain"]] == [client.certificate.read_text().strip()]
    # A second client on the same server is told apart (the subject is per connection, not per server).
    other = authority.issue_client("Ærøskøbing Apotek", "Apotekerne på Ærø")
    assert whoami(mutual, client_context(authority, other))["subject"] == other.subject


def test_mutual_tls_lets_a_client_without_a_certificate_connect(authority: CertificateAuthority, mutual: str
                                                                 ) -> None:
    answer = whoami(mutual, client_context(authority))
    assert answer["subject"] is None and answer["tls"]["client_cert_chain"] == []


def test_mutual_tls_refuses_a_certificate_from_another_ca(authority: CertificateAuthority, mutual: str,
                                                          tmp_path: Path) -> None:
    stranger = CertificateAuthority(tmp_path, "Other CA").issue_client("Region Syddanmark FMK-opslag",
                                                                       "Region Syddanmark")
    with pytest.raises(httpx.TransportError), httpx.Client(verify=client_context(authority, stranger),
                                                           timeout=5) as client:
        client.get(f"{mutual}/whoami")
    assert whoami(mutual, client_context(authority))["subject"] is None  # the server serves on


def test_tls_12_is_spoken_too_and_reported(authority: CertificateAuthority, mutual: str) -> None:
    context = client_context(authority, authority.issue_client("Old client"))
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    answer = whoami(mutual, context)
    assert answer["tls"]["tls_version"] == 0x0303
    assert answer["tls"]["cipher_suite"] in {0xC02B, 0xC02C, 0xCCA9}  # ECDHE-ECDSA with AES-GCM or ChaCha20


def test_plain_http_to_a_tls_port_fails(mutual: str) -> None:
    with pytest.raises(httpx.TransportError):
        httpx.get(mutual.replace("https://", "http://") + "/whoami", timeout=5)


def test_plain_http_has_no_tls_extension() -> None:
    port = free_port()
    web = WebServer(echo_app(), f"127.0.0.1:{port}")
    web.start()
    try:
        answer = httpx.get(f"http://127.0.0.1:{port}/whoami", timeout=5).json()
    finally:
        web.stop()
    assert answer == {"subject": None, "tls": None, "scheme": "http"}


def encrypted_key(path: Path) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.BestAvailableEncryption(b"secret")))
    return str(path)


@pytest.mark.parametrize("case", ["missing key", "missing certificate", "certificate not PEM", "key not PEM",
                                  "encrypted key", "key of another certificate", "missing client CA",
                                  "client CA not PEM"])
def test_bad_files_are_refused_naming_the_setting_and_the_file(case: str, authority: CertificateAuthority,
                                                               server_certificate: Issued, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a PEM file\n")
    setting, named = {
        "missing key": ("tls_key", str(tmp_path / "absent.key")),
        "missing certificate": ("tls_certificate", str(tmp_path / "absent.pem")),
        "certificate not PEM": ("tls_certificate", str(garbage)),
        "key not PEM": ("tls_key", str(garbage)),
        "encrypted key": ("tls_key", encrypted_key(tmp_path / "encrypted.key")),
        "key of another certificate": ("tls_key", str(authority.issue_client("Someone").key)),
        "missing client CA": ("tls_client_ca", str(tmp_path / "absent-ca.pem")),
        "client CA not PEM": ("tls_client_ca", str(garbage)),
    }[case]
    files = {"tls_certificate": str(server_certificate.certificate), "tls_key": str(server_certificate.key),
             "tls_client_ca": str(authority.path), setting: named}
    options = TlsOptions(files["tls_certificate"], files["tls_key"], files["tls_client_ca"])
    with pytest.raises(ConfigurationError) as refused:
        WebServer(echo_app(), f"127.0.0.1:{free_port()}", options)
    assert f"{setting} = {named!r}" in str(refused.value), str(refused.value)


def test_tls_is_off_without_a_certificate(sqlite_databases: Databases) -> None:
    assert tls_options(sqlite_databases.settings()) is None
    on = tls_options(sqlite_databases.settings(STAMDATA_TLS_CERTIFICATE="c.pem", STAMDATA_TLS_KEY="k.pem"))
    assert on == TlsOptions("c.pem", "k.pem") and not on.asks_for_client_certificates


def serve_tls(authority: CertificateAuthority, server_certificate: Issued, **changed: str) -> dict[str, str]:
    return {"STAMDATA_TLS_CERTIFICATE": str(server_certificate.certificate),
            "STAMDATA_TLS_KEY": str(server_certificate.key), "STAMDATA_TLS_CLIENT_CA": str(authority.path), **changed}


def test_serve_answers_over_https_only(sqlite_databases: Databases, authority: CertificateAuthority,
                                       server_certificate: Issued) -> None:
    port = free_port()
    environment = {key: value for key, value in os.environ.items() if not key.startswith("STAMDATA_")}
    environment.update(sqlite_databases.environ(STAMDATA_LISTEN=f"127.0.0.1:{port}",
                                                **serve_tls(authority, server_certificate)))
    process = subprocess.Popen([sys.executable, "-m", "importer", "serve"], env=environment, cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    context = client_context(authority, authority.issue_client("Monitor"))
    try:
        def status() -> httpx.Response | None:
            try:
                return httpx.get(f"https://127.0.0.1:{port}/status", verify=context, timeout=10)
            except httpx.ConnectError:
                assert process.poll() is None
                return None

        answer = wait_for(status, 30, "serve to answer over https")
        # Red or green depends on the (empty) database; that it answers over mutual TLS is what counts here.
        assert answer is not None
        assert answer.status_code in {200, 500} and answer.text.strip(), answer.text
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/status", timeout=5)
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    sys.stdout.write(output.decode())
    assert process.returncode == 0, output.decode()
    started = next(line for line in output.decode().splitlines() if "HTTP server started" in line)
    assert '"tls": true' in started and str(authority.path) in started, started


def test_serve_refuses_a_missing_key_file_with_exit_2(sqlite_databases: Databases, tmp_path: Path,
                                                      authority: CertificateAuthority,
                                                      server_certificate: Issued) -> None:
    missing = tmp_path / "absent" / "server.key"
    tls = serve_tls(authority, server_certificate, STAMDATA_TLS_KEY=str(missing))
    result = run_cli("serve", env=sqlite_databases.environ(STAMDATA_LISTEN=f"127.0.0.1:{free_port()}", **tls),
                     timeout=60)
    assert result.exit_code == 2, result.stderr
    assert f"tls_key = '{missing}' (from $STAMDATA_TLS_KEY): cannot be read" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_client_certificate_subject_reads_only_a_non_empty_name() -> None:
    assert client_certificate_subject({"type": "http"}) is None
    assert client_certificate_subject({"extensions": {"tls": {"client_cert_name": None}}}) is None
    assert client_certificate_subject({"extensions": {"tls": {"client_cert_name": ""}}}) is None
    assert client_certificate_subject({"extensions": {"tls": {"client_cert_name": "CN=a,C=DK"}}}) == "CN=a,C=DK"
