"""The certificate chain and private key an avatarbot instance signs C2PA manifests with.

On first run `SigningIdentity.load_or_create` makes a local ES256 chain (a root CA that
signs one end-entity signing certificate) in `<data_dir>/c2pa/` and reuses it afterwards.
Such a chain is in no public trust list: verifiers elsewhere will say "signature valid,
signer untrusted", and this instance recognises its own certificate. Operators with a real
C2PA signing certificate use `SigningIdentity.from_files` instead.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bot.errors import AvatarbotError

CHAIN_FILE = "chain.pem"
KEY_FILE = "signer.key"
ROOT_KEY_FILE = "root.key"
VALIDITY = datetime.timedelta(days=3650)


class SigningIdentityError(AvatarbotError):
    """The signing certificate or key is missing, unreadable or unusable (fatal at start-up)."""


@dataclass(frozen=True)
class SigningIdentity:
    cert_chain_pem: bytes
    """End-entity certificate first, then its issuers (PEM)."""
    private_key_pem: bytes
    """PKCS#8 PEM key of the end-entity certificate (ECDSA P-256 for ES256)."""

    def __post_init__(self) -> None:
        try:
            certs = x509.load_pem_x509_certificates(self.cert_chain_pem)
            key = serialization.load_pem_private_key(self.private_key_pem, password=None)
        except ValueError as exc:
            raise SigningIdentityError(f"unreadable signing certificate or key: {exc}") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise SigningIdentityError("the signing key must be an ECDSA P-256 key (ES256)")
        if certs[0].public_key() != key.public_key():
            raise SigningIdentityError("the first certificate in the chain does not match the key")

    def __repr__(self) -> str:
        return f"SigningIdentity(subject={self.certificate.subject.rfc4514_string()!r})"

    @property
    def certificates(self) -> list[x509.Certificate]:
        return x509.load_pem_x509_certificates(self.cert_chain_pem)

    @property
    def certificate(self) -> x509.Certificate:
        """The end-entity (signing) certificate."""
        return self.certificates[0]

    @property
    def anchor_pem(self) -> str:
        """The last certificate of the chain, used as this instance's own trust anchor."""
        return self.certificates[-1].public_bytes(serialization.Encoding.PEM).decode()

    @classmethod
    def from_files(cls, cert_chain_pem: Path, key_pem: Path) -> SigningIdentity:
        try:
            return cls(cert_chain_pem.read_bytes(), key_pem.read_bytes())
        except OSError as exc:
            raise SigningIdentityError(f"cannot read signing identity: {exc}") from exc

    @classmethod
    def load_or_create(cls, data_dir: Path, *, organisation: str = "avatarbot") -> SigningIdentity:
        """Reuse `<data_dir>/c2pa/{chain.pem,signer.key}`, generating them on first run."""
        directory = data_dir / "c2pa"
        chain, key = directory / CHAIN_FILE, directory / KEY_FILE
        if not chain.exists():  # written last: its absence means "never finished"
            _create(directory, organisation)
        return cls.from_files(chain, key)


def _name(common_name: str, organisation: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
        ]
    )


def _key_usage(*, sign: bool, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o600)  # in case the file existed with looser bits


def _create(directory: Path, organisation: str) -> None:
    """Generate a root CA and a C2PA-profile signing certificate (ES256) into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(minutes=5), now + VALIDITY
    root_key = ec.generate_private_key(ec.SECP256R1())
    root_name = _name(f"{organisation} provenance root", organisation)
    root = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(sign=False, ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), False)
        .sign(root_key, hashes.SHA256())
    )
    signer_key = ec.generate_private_key(ec.SECP256R1())
    signer = (
        x509.CertificateBuilder()
        .subject_name(_name(f"{organisation} avatar signer", organisation))
        .issuer_name(root_name)
        .public_key(signer_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(sign=True, ca=False), critical=True)
        # C2PA's certificate profile accepts emailProtection for claim signers.
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(signer_key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), False
        )
        .sign(root_key, hashes.SHA256())
    )
    chain = signer.public_bytes(serialization.Encoding.PEM) + root.public_bytes(
        serialization.Encoding.PEM
    )
    # Keys first, chain last: a crash midway leaves no chain, so the next start regenerates.
    _write_private(directory / ROOT_KEY_FILE, _pem_key(root_key))
    _write_private(directory / KEY_FILE, _pem_key(signer_key))
    (directory / CHAIN_FILE).write_bytes(chain)
