from cryptography import x509
from cryptography.fernet import Fernet
from cryptography.hazmat.bindings._rust import openssl as rust_openssl
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

# loaded at import from OpenSSL's legacy provider: compiled into the static libcrypto
assert rust_openssl._legacy_provider_loaded, "the legacy provider did not load"

fernet = Fernet(Fernet.generate_key())
assert fernet.decrypt(fernet.encrypt(b"static secret")) == b"static secret"

key = ec.generate_private_key(ec.SECP256R1())
name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "smoke")])
import datetime
start = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
cert = (
    x509.CertificateBuilder().subject_name(name).issuer_name(name)
    .public_key(key.public_key()).serial_number(7)
    .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=1))
    .sign(key, hashes.SHA256())
)
from cryptography.hazmat.primitives.serialization import Encoding
parsed = x509.load_pem_x509_certificate(cert.public_bytes(Encoding.PEM))
assert parsed.subject == name and parsed.serial_number == 7, parsed
