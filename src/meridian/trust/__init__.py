"""Who may call a site, and how a site proves who it is (a store-level package: it imports
nothing of Meridian but ``meridian.errors``).

- ``credentials``: the credentials a site accepts (admin, one per peer, one-time join
  credentials), kept hashed in ``DATA/secrets/credentials.json``, and the ones it presents to
  its peers (``DATA/secrets/peers.json``).
- ``tls``: the namespace's certificate authority, each site's key and certificate, and the
  TLS contexts built from them (the ``cryptography`` package; nothing home-made).

Why and what each part protects against: docs/security.md.
"""

from meridian.trust.credentials import (
    Caller,
    CredentialStore,
    PresentedCredentials,
    SecretsDir,
    new_credential,
    write_secret,
)

__all__ = ["Caller", "CredentialStore", "PresentedCredentials", "SecretsDir", "new_credential",
           "write_secret"]
