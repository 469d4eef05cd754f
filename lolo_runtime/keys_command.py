"""``lolo-run keys``: create, list and revoke API keys in the state store."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from lolo_runtime.apikeys import create_key, list_keys, revoke_key
from lolo_runtime.errors import UsageError
from lolo_runtime.state import StateBackend, StateError


def keys_command(options: argparse.Namespace, state: StateBackend) -> int:
    try:
        return asyncio.run(_keys(options, state))
    except UsageError as exc:
        print(f"lolo-run keys: {exc}", file=sys.stderr)
        return 2
    except StateError as exc:
        print(f"lolo-run keys: {exc}", file=sys.stderr)
        return 1


async def _keys(options: argparse.Namespace, state: StateBackend) -> int:
    async with state as backend:
        if options.action == "create":
            key, record = await create_key(backend, options.email, options.account, options.role)
            # The only time the key is shown: it is not stored, only its hash.
            print(key)
            print(
                f"created {record.prefix} for {record.email} "
                f"(account {record.account_id}, role {record.role}) "
                f"in {state.location}; keep the key safe, it cannot be shown again",
                file=sys.stderr,
            )
            return 0
        if options.action == "list":
            records = await list_keys(backend)
            if not records:
                print(f"no keys in {state.location}", file=sys.stderr)
            for record in records:
                created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))
                print(
                    f"{record.prefix}\t{record.email}\t{record.account_id}\t{created}"
                    f"\t{record.role}"
                )
            return 0
        if await revoke_key(backend, options.key_id):
            print(f"revoked {options.key_id}", file=sys.stderr)
            return 0
        print(f"lolo-run keys: no key {options.key_id!r} in {state.location}", file=sys.stderr)
        return 1
