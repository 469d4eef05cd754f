"""API keys for the "Lolo API Auth" node, kept in the state store.

A key looks like ``lolo_<keyid>_<secret>``: ``keyid`` is 8 hex characters, not secret, used to
find and list keys; ``secret`` is 32 random bytes, urlsafe-base64 encoded (43 characters).
Only a hash of the whole key is stored, under the reserved app namespace :data:`KEYS_APP`, key
``key:<keyid>``. Each key has a role, ``read`` or ``write`` (:data:`ROLES`); records made before
roles existed have none and count as ``write``, which is what every key could do then.
Because every lookup reads the store, a running app sharing the state file
sees a key created (or revoked) by another process at once.

Nothing here logs a key or its hash.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any

from .errors import UsageError
from .state import AppState, StateBackend, StateError

__all__ = [
    "KEYS_APP",
    "ROLES",
    "KeyRecord",
    "create_key",
    "list_keys",
    "live_key_ids",
    "revoke_key",
    "verify_key",
]

KEYS_APP = "__lolo_keys__"
"""Reserved app namespace holding the key records (flow apps must not use this name)."""

ROLES = ("read", "write")
"""A ``read`` key may only read: ``lolo/api-auth`` with ``authorize: true`` refuses it writes."""
DEFAULT_ROLE = "write"

_RECORD_PREFIX = "key:"
_KEY_RE = re.compile(r"lolo_([0-9a-f]{8})_([A-Za-z0-9_-]{43})")
_KEYID_RE = re.compile(r"([0-9a-f]{8})|lolo_([0-9a-f]{8})(?:_[A-Za-z0-9_-]*)?")


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """What is known about a key, minus the key itself (and minus its hash)."""

    key_id: str
    email: str
    account_id: str
    created: float
    role: str = DEFAULT_ROLE

    @property
    def prefix(self) -> str:
        """The non-secret start of the key, ``lolo_<keyid>``, for listings."""
        return f"lolo_{self.key_id}"


def _hash(key: str) -> str:
    # A plain (unsalted, fast) SHA-256 is enough here: the key carries 256 random bits, so
    # there is no dictionary to try and brute force is hopeless. Slow password hashes are for
    # low-entropy secrets chosen by people.
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _store(backend: StateBackend) -> AppState:
    return backend.for_app(KEYS_APP)


def _record_from(key_id: str, stored: Any) -> tuple[KeyRecord, str] | None:
    """Turn a stored dict into (record, hash); None if it is not a well-formed record."""
    if not isinstance(stored, dict):
        return None
    digest, email = stored.get("hash"), stored.get("email")
    account_id, created = stored.get("account_id"), stored.get("created")
    if not (isinstance(digest, str) and isinstance(email, str) and isinstance(account_id, str)):
        return None
    if isinstance(created, bool) or not isinstance(created, int | float):
        return None
    role = stored.get("role", DEFAULT_ROLE)
    if role not in ROLES:  # damaged: refusing the key beats guessing what it may do
        return None
    return KeyRecord(key_id, email, account_id, float(created), role), digest


async def create_key(
    backend: StateBackend, email: str, account_id: str | None = None, role: str = DEFAULT_ROLE
) -> tuple[str, KeyRecord]:
    """Create a key for ``email``; return the key (shown once, never stored) and its record.

    ``account_id`` defaults to a newly generated ``acct_<16 hex>``; ``role`` is ``read`` or
    ``write``.
    """
    if role not in ROLES:
        raise UsageError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    email = email.strip() if isinstance(email, str) else email
    if not isinstance(email, str) or "@" not in email or any(ch.isspace() for ch in email):
        raise UsageError(f"email must look like an address (x@y, no spaces), not {email!r}")
    if account_id is None:
        account_id = f"acct_{secrets.token_hex(8)}"
    elif not isinstance(account_id, str) or not account_id.strip():
        raise UsageError(f"account_id must be a non-empty string, not {account_id!r}")
    store = _store(backend)
    for _ in range(10):
        key_id = secrets.token_hex(4)
        if await store.get(_RECORD_PREFIX + key_id) is None:
            break
    else:  # 10 collisions in a 2**32 space: something is badly wrong
        raise StateError("could not find an unused API key id")
    key = f"lolo_{key_id}_{secrets.token_urlsafe(32)}"
    record = KeyRecord(key_id, email, account_id, backend.clock(), role)
    await store.set(
        _RECORD_PREFIX + key_id,
        {
            "hash": _hash(key),
            "email": record.email,
            "account_id": record.account_id,
            "created": record.created,
            "role": record.role,
        },
    )
    return key, record


async def verify_key(backend: StateBackend, presented: str | None) -> KeyRecord | None:
    """Return the record of ``presented`` if it is a valid, unrevoked key, else None.

    Malformed input (None for a missing header, wrong shape, wrong type, empty) gives None and
    never raises. The hash comparison takes constant time.
    """
    if not isinstance(presented, str):
        return None
    match = _KEY_RE.fullmatch(presented)
    if match is None:
        return None
    key_id = match.group(1)
    found = _record_from(key_id, await _store(backend).get(_RECORD_PREFIX + key_id))
    if found is None:
        return None
    record, digest = found
    if not hmac.compare_digest(_hash(presented), digest):
        return None
    return record


async def list_keys(backend: StateBackend) -> list[KeyRecord]:
    """Return every key's record (no secrets, no hashes), oldest first."""
    store = _store(backend)
    records: list[KeyRecord] = []
    for name in await store.keys(_RECORD_PREFIX):
        found = _record_from(name[len(_RECORD_PREFIX) :], await store.get(name))
        if found is not None:  # skip one revoked meanwhile, or a damaged record
            records.append(found[0])
    records.sort(key=lambda record: (record.created, record.key_id))
    return records


async def live_key_ids(backend: StateBackend) -> set[str]:
    """The ids of every key not revoked: one read of the store, however many keys."""
    return {name[len(_RECORD_PREFIX) :] for name in await _store(backend).keys(_RECORD_PREFIX)}


async def revoke_key(backend: StateBackend, keyid_or_prefix: str) -> bool:
    """Delete a key given its id (``1a2b3c4d``), prefix (``lolo_1a2b3c4d``) or the whole key.

    Returns True if a key was revoked, False if there was none (or the input is malformed).
    """
    match = _KEYID_RE.fullmatch(keyid_or_prefix.strip().lower())
    if match is None:
        return False
    key_id = match.group(1) or match.group(2)
    return await _store(backend).delete(_RECORD_PREFIX + key_id)
