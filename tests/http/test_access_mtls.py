"""Mutual TLS as the alternative to a token: `stamdata-importer serve` over HTTPS with a client CA; a client
registered with `clients add --certificate-subject` is identified by its verified certificate alone, with its
scopes; an unregistered or revoked certificate is refused like an unknown token."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import REPO, Databases, run_cli
from tests.daemon.harness import free_port, wait_for
from tests.http.certificates import CertificateAuthority, client_context
from tests.http.server import import_sample


def test_a_client_certificate_registered_for_a_client_is_its_credential(sqlite_databases: Databases,
                                                                       tmp_path: Path) -> None:
    import_sample(sqlite_databases, tmp_path / "drops")
    authority = CertificateAuthority(tmp_path / "pki", "Clients CA")
    server = authority.issue_server()
    epj = authority.issue_client("Region H EPJ", "Region Hovedstaden")
    stranger = authority.issue_client("Not registered")
    env = sqlite_databases.environ()
    added = run_cli("clients", "add", "region-h-epj", "--scope", "lookup:autorisation", "--certificate-subject",
                    epj.subject, "--no-token", env=env)
    assert added.exit_code == 0, added.stderr
    assert "stm_" not in added.stdout, "a certificate-only client gets no token"

    port = free_port()
    environment = {key: value for key, value in os.environ.items() if not key.startswith("STAMDATA_")}
    environment.update(env, STAMDATA_LISTEN=f"127.0.0.1:{port}", STAMDATA_TLS_CERTIFICATE=str(server.certificate),
                       STAMDATA_TLS_KEY=str(server.key), STAMDATA_TLS_CLIENT_CA=str(authority.path),
                       # The revocation below is seen at once (test_access.py tests the cache's bound by the clock).
                       STAMDATA_CREDENTIAL_CACHE_S="0")
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "importer", "serve"], env=environment, cwd=REPO,
                                   stdout=log, stderr=subprocess.STDOUT)
    base = f"https://127.0.0.1:{port}"

    def get(path: str, identity: object = None) -> httpx.Response:
        context = client_context(authority, identity)  # type: ignore[arg-type]
        with httpx.Client(verify=context, timeout=10) as client:
            return client.get(f"{base}{path}")

    try:
        def answers() -> bool:
            try:
                return get("/openapi.json").status_code == 200
            except httpx.HTTPError:
                assert process.poll() is None, log_path.read_text()
                return False

        wait_for(answers, 30, "serve to answer over HTTPS")
        person = get("/autorisation/v1/persons/0101801234", epj)
        assert person.status_code == 200, person.text
        assert person.json()["authorisations"][0]["identifier"]["value"] == "0A1B2"
        assert get("/replication/autorisationsregisteret/autorisation/v1", epj).status_code == 403, "its scopes only"
        assert get("/autorisation/v1/persons/0101801234", stranger).status_code == 401
        assert get("/autorisation/v1/persons/0101801234").status_code == 401

        assert run_cli("clients", "revoke", "region-h-epj", env=env).exit_code == 0
        assert get("/autorisation/v1/persons/0101801234", epj).status_code == 401
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(30)
    output = log_path.read_text()
    sys.stdout.write(output)
    assert code == 0, output
    audit = run_cli("audit", "--cpr", "0101801234", env=env)
    assert "region-h-epj" in audit.stdout and audit.stdout.strip().endswith("1 access(es) to 010180-****")
