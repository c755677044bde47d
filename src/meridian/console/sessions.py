"""Who may use the console: one-time sign-in tokens, sessions, and the CSRF token of each.

``meridian console`` asks the running site (admin credential, ``POST /api/v1/console/sign-in``)
for a one-time token and prints the URL that carries it. Visiting that URL spends the token
(once, within ``TOKEN_TTL`` seconds) and opens a session: a random id in an HttpOnly,
SameSite=Strict cookie (Secure when the site speaks TLS). Each session has its own CSRF token,
which the pages send back in the ``X-CSRF-Token`` header of every request that changes
anything; a state-changing request without it, or with another session's, is refused.

Everything lives in the site process's memory: a restarted site forgets its sessions (sign in
again with a new URL). Only hashes of tokens and session ids are kept, so a memory dump does not
hand out a live session.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

TOKEN_TTL = 600.0  # seconds a sign-in URL stays good (once)
SESSION_IDLE = 12 * 3600.0  # a session unused this long is closed
COOKIE = "meridian_console"
CSRF_HEADER = "x-csrf-token"


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass
class Session:
    """One signed-in browser. ``csrf`` is sent to the pages (never in a cookie)."""

    csrf: str
    opened: float
    last_used: float


class ConsoleSessions:
    """Sign-in tokens and sessions of one site (the loop thread only: no locking)."""

    def __init__(self) -> None:
        self._tokens: dict[str, float] = {}  # hash of token -> expiry
        self._sessions: dict[str, Session] = {}  # hash of session id -> session

    def issue_token(self) -> str:
        """A new one-time sign-in token (good for ``TOKEN_TTL`` seconds)."""
        now = time.time()
        self._tokens = {h: t for h, t in self._tokens.items() if t > now}
        token = secrets.token_urlsafe(32)
        self._tokens[_digest(token)] = now + TOKEN_TTL
        return token

    def open(self, token: str) -> tuple[str, Session] | None:
        """Spend ``token`` and open a session: (session id for the cookie, session); None
        when the token is unknown, spent or expired."""
        expiry = self._tokens.pop(_digest(token), None)
        now = time.time()
        if expiry is None or expiry < now:
            return None
        session_id = secrets.token_urlsafe(32)
        session = Session(csrf=secrets.token_urlsafe(24), opened=now, last_used=now)
        self._sessions[_digest(session_id)] = session
        return session_id, session

    def find(self, session_id: str | None) -> Session | None:
        """The live session of a cookie value (its idle clock restarts), or None."""
        if not session_id:
            return None
        key = _digest(session_id)
        session = self._sessions.get(key)
        now = time.time()
        if session is None or now - session.last_used > SESSION_IDLE:
            self._sessions.pop(key, None)
            return None
        session.last_used = now
        return session

    def close(self, session_id: str | None) -> None:
        if session_id:
            self._sessions.pop(_digest(session_id), None)


def csrf_ok(session: Session, presented: str | None) -> bool:
    """Whether a request carries this session's CSRF token (constant-time comparison)."""
    return bool(presented) and hmac.compare_digest(session.csrf, presented or "")
