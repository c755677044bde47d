"""TLS between sites: the namespace's certificate authority and each site's certificate.

Keys and certificates are made with the ``cryptography`` package (ECDSA P-256, SHA-256);
nothing here implements cryptography itself.

- The first site of a namespace (``meridian init`` without ``--join``) makes the namespace CA:
  ``DATA/tls/ca.key`` (0600, never leaves that site) and ``ca.crt``; and its own key and
  certificate signed by it (``site.key``, 0600, and ``site.crt``).
- A joining site makes its key and a certificate signing request; the site it joins signs the
  request with the CA key (``POST /api/v1/join``) and hands back the certificate. The CA
  certificate itself comes to the joining site in the invitation file, with the join
  credential, so the joining site verifies the very first connection.
- Or the studio's own CA: ``[api] cert``, ``key`` and ``ca`` point at files it issued.

A certificate names the site (common name) and the host names and addresses peers use to call
it (subject alternative names); clients check those as for any HTTPS server.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from meridian.errors import BadInput

CA_YEARS = 10
SITE_YEARS = 2


@dataclass(frozen=True)
class TlsFiles:
    """Where one site keeps its TLS material."""

    key: Path
    cert: Path
    ca: Path
    ca_key: Path | None = None  # only at the site that made the namespace CA

    @classmethod
    def default(cls, data: Path) -> TlsFiles:
        folder = data / "tls"
        return cls(folder / "site.key", folder / "site.crt", folder / "ca.crt", folder / "ca.key")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write(path: Path, data: bytes, private: bool) -> None:
    """Keys are secret; certificates are not, but a site's data stays its own (0600 both)."""
    from meridian.trust.credentials import write_secret

    write_secret(path, data.decode())


def new_ca(namespace: str) -> tuple[bytes, bytes]:
    """A new namespace CA: (key PEM, certificate PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Meridian namespace CA ({namespace})"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Meridian")])
    now = _now()
    public = key.public_key()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(public).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=365 * CA_YEARS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(key, hashes.SHA256()))
    return _key_pem(key), cert.public_bytes(serialization.Encoding.PEM)


def host_names(listen_host: str, extra: tuple[str, ...] = ()) -> list[str]:
    """The names a site's certificate carries: what peers may put in its URL."""
    names = ["localhost", "127.0.0.1", "::1", socket.gethostname(), socket.getfqdn()]
    if listen_host not in ("0.0.0.0", "::", ""):
        names.append(listen_host)
    names.extend(extra)
    seen: list[str] = []
    for name in names:
        if name and name not in seen:
            seen.append(name)
    return seen


def _alt_names(hosts: list[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for host in hosts:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            entries.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(entries)


def new_request(site: str, hosts: list[str]) -> tuple[bytes, bytes]:
    """A new site key and a signing request for it: (key PEM, CSR PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, site)]))
           .add_extension(_alt_names(hosts), critical=False)
           .sign(key, hashes.SHA256()))
    return _key_pem(key), csr.public_bytes(serialization.Encoding.PEM)


def sign_request(ca_key_pem: bytes, ca_cert_pem: bytes, csr_pem: bytes, site: str) -> bytes:
    """The CA signs a site's request: a server and client certificate for ``site`` with the
    host names the request asks for. Raises BadInput for a request that is not well formed,
    not signed by its own key, or made for another site name."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as exc:
        raise BadInput(f"certificate request: not a PEM signing request ({exc})") from None
    if not csr.is_signature_valid:
        raise BadInput("certificate request: its signature does not match its key")
    names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if [n.value for n in names] != [site]:
        raise BadInput(f"certificate request: made for {names[0].value if names else '?'!r}, "
                       f"not for site {site!r}")
    try:
        alt = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise BadInput("certificate request: no host names (subjectAltName)") from None
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise BadInput("the namespace CA key is not an EC key")
    public = csr.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise BadInput("certificate request: use an EC key")
    now = _now()
    cert = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(ca_cert.subject)
            .public_key(public).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=365 * SITE_YEARS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(alt, critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


def check_ca_pem(pem: bytes) -> None:
    """Raises BadInput unless ``pem`` is one CA certificate."""
    try:
        cert = x509.load_pem_x509_certificate(pem)
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except (ValueError, x509.ExtensionNotFound) as exc:
        raise BadInput(f"CA certificate: not a PEM CA certificate ({exc})") from None
    if not constraints.ca:
        raise BadInput("CA certificate: the certificate given is not a CA's")


def make_namespace(files: TlsFiles, site: str, hosts: list[str]) -> None:
    """The first site of a namespace: a new CA, and this site's key and certificate."""
    assert files.ca_key is not None
    ca_key, ca_cert = new_ca(site)
    key, csr = new_request(site, hosts)
    _write(files.ca_key, ca_key, private=True)
    _write(files.ca, ca_cert, private=False)
    _write(files.key, key, private=True)
    _write(files.cert, sign_request(ca_key, ca_cert, csr, site), private=False)


def reissue(files: TlsFiles, ca: TlsFiles, site: str, hosts: list[str]) -> None:
    """Give a site of this machine a new key and a certificate from ``ca``'s CA (``meridian
    up`` and tests put every site in the namespace of the first one this way)."""
    assert ca.ca_key is not None
    key, csr = new_request(site, hosts)
    ca_cert = ca.ca.read_bytes()
    _write(files.key, key, private=True)
    _write(files.cert, sign_request(ca.ca_key.read_bytes(), ca_cert, csr, site), private=False)
    _write(files.ca, ca_cert, private=False)
    if files.ca_key is not None and files.ca_key != ca.ca_key:
        files.ca_key.unlink(missing_ok=True)  # one CA key per namespace


def install(files: TlsFiles, key: bytes, cert: bytes, ca_cert: bytes) -> None:
    """Write a joining site's key, its signed certificate and the namespace CA."""
    _write(files.key, key, private=True)
    _write(files.cert, cert, private=False)
    _write(files.ca, ca_cert, private=False)


def client_context(ca: Path) -> ssl.SSLContext:
    """Verifies a site's certificate against the namespace (or studio) CA, host name
    included; the system's CAs are not trusted for calls between sites."""
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
    except (OSError, ssl.SSLError) as exc:
        raise BadInput(f"api.ca {ca}: cannot load the CA certificate ({exc})") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
