"""Certificates for TLS tests: a CA, a server certificate for 127.0.0.1 and client certificates, as PEM files.

EC P-256 keys, so minting one takes about a millisecond; everything is valid from a minute ago for a day.
"""

import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Issued:
    """A certificate and its key, each in its own PEM file, and the certificate's RFC 4514 subject."""

    certificate: Path
    key: Path
    subject: str


def _name(common_name: str, organisation: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "DK"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


class CertificateAuthority:
    """A self-signed CA in `directory`, issuing server and client certificates next to its own."""

    def __init__(self, directory: Path, name: str = "Test CA") -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = _name(name, "Stamdata test")
        now = datetime.datetime.now(datetime.UTC)
        public = self.key.public_key()
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject).public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        self.path = directory / f"{name.replace(' ', '-').lower()}.pem"
        self.path.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))

    def issue_server(self, stem: str = "server", ip: str = "127.0.0.1") -> Issued:
        """A server certificate for `ip` (an IP subject alternative name, which is what clients check)."""
        return self._issue(stem, _name(ip, "Stamdata test"), ExtendedKeyUsageOID.SERVER_AUTH,
                           x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]))

    def issue_client(self, common_name: str, organisation: str = "Region Test") -> Issued:
        """A client certificate whose subject is C=DK, O=`organisation`, CN=`common_name`."""
        return self._issue(common_name.replace(" ", "-").lower(), _name(common_name, organisation),
                           ExtendedKeyUsageOID.CLIENT_AUTH)

    def _issue(self, stem: str, subject: x509.Name, usage: x509.ObjectIdentifier,
               alternative: x509.SubjectAlternativeName | None = None) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject).issuer_name(self.certificate.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=True, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
        )
        if alternative is not None:
            builder = builder.add_extension(alternative, critical=False)
        certificate = builder.sign(self.key, hashes.SHA256())
        certificate_path, key_path = self.directory / f"{stem}.pem", self.directory / f"{stem}.key"
        certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        _write_key(key, key_path)
        return Issued(certificate_path, key_path, certificate.subject.rfc4514_string())


def client_context(trusted: CertificateAuthority, identity: Issued | None = None) -> ssl.SSLContext:
    """What an HTTPS client uses: trusts `trusted` for the server, presents `identity` if given."""
    context = ssl.create_default_context(cafile=str(trusted.path))
    if identity is not None:
        context.load_cert_chain(identity.certificate, identity.key)
    return context
