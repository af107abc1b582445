"""Make the chart's first API key one the gateway accepts: store its SHA-256 hash once, as
`semantik keys create` stores a key it makes. The gateway pod's init container runs it with the key's
Secret mounted as a file: `python /opt/semantik/ensure-api-key.py /var/run/semantik/api-key/api-key`.

Idempotent: a key already stored is left as it is, so a key revoked with `semantik keys revoke` stays
revoked across restarts and upgrades. Exit status 1 with one line on stderr when it cannot.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from semantik.core.db.engine import create_engine, migrate, session_factory
from semantik.core.db.models import ApiKey
from semantik.core.services.keys import hash_key
from semantik.core.settings import Settings

NAME = "helm-first-key"


async def ensure(key: str) -> str:
    engine = create_engine(Settings().resolved_database_url)
    try:
        await migrate(engine)
        sessions = session_factory(engine)
        digest = hash_key(key)
        async with sessions.begin() as session:
            if await session.scalar(select(ApiKey.id).where(ApiKey.key_hash == digest)) is not None:
                return "already stored"
            session.add(ApiKey(name=NAME, prefix=key[:12], key_hash=digest))
        return "stored"
    except IntegrityError:
        return "already stored"  # another gateway pod stored it at the same moment
    finally:
        await engine.dispose()


def main() -> int:
    key = Path(sys.argv[1]).read_text().strip()
    if len(key) < 32:
        print("ensure-api-key: the key must be at least 32 characters", file=sys.stderr)
        return 1
    try:
        outcome = asyncio.run(ensure(key))
    except Exception as exc:
        print(f"ensure-api-key: cannot store the key: {exc}", file=sys.stderr)
        return 1
    print(f"ensure-api-key: key {key[:12]}... {outcome} as {NAME!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
