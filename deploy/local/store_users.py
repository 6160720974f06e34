"""Create the local store's users, once: an administrator and the services' user.

    store_users.py URI --ca-file CA --admin-password-file F --user NAME --password-file F

The store (secantusd-rs --auth) lets a local connection create the first user while it has
none, as MongoDB's localhost exception does; after that the administrator creates the
rest. Idempotent: users that exist are left as they are.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pymongo import AsyncMongoClient
from pymongo.errors import OperationFailure

ADMIN = "admin"


def _with_user(uri: str, user: str, password: str) -> str:
    scheme, _, rest = uri.partition("://")
    return f"{scheme}://{quote(user, safe='')}:{quote(password, safe='')}@{rest}"


async def ensure_users(
    uri: str, ca_file: Path, admin_password: str, user: str, password: str
) -> None:
    options: dict[str, Any] = {
        "tls": True,
        "tlsCAFile": str(ca_file),
        "serverSelectionTimeoutMS": 5000,
    }
    anonymous: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, **options)
    try:
        try:
            await anonymous.admin.command("createUser", ADMIN, pwd=admin_password, roles=["root"])
            print("created the store's administrator")
        except OperationFailure:
            pass  # it has users: the administrator exists
    finally:
        await anonymous.close()
    admin: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        _with_user(uri, ADMIN, admin_password), authSource="admin", **options
    )
    try:
        known = await admin.admin.command("usersInfo", user)
        if not known.get("users"):
            # Every service keeps its own database (<prefix>_<service>); the user may use
            # any of them, and nothing else (no user administration).
            await admin.admin.command(
                "createUser", user, pwd=password,
                roles=[{"role": "readWriteAnyDatabase", "db": "admin"}],
            )  # fmt: skip
            print(f"created the store user {user!r}")
    finally:
        await admin.close()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("uri")
    parser.add_argument("--ca-file", type=Path, required=True)
    parser.add_argument("--admin-password-file", type=Path, required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password-file", type=Path, required=True)
    args = parser.parse_args()
    asyncio.run(ensure_users(
        args.uri, args.ca_file, args.admin_password_file.read_text().strip(), args.user,
        args.password_file.read_text().strip(),
    ))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
