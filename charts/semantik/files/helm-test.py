"""`helm test`: the gateway is ready, refuses a request without a key, accepts the chart's first API
key, and (when a collection is named) finds something in it. Run by templates/tests/gateway.yaml:
`python /opt/semantik/helm-test.py` with SEMANTIK_TEST_URL, SEMANTIK_TEST_KEY_FILE and optionally
SEMANTIK_TEST_COLLECTION and SEMANTIK_TEST_QUERY. Prints one line per check; exit status 1 on the first
that fails.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import httpx


def check(name: str, ok: bool, detail: str) -> None:
    print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}", flush=True)
    if not ok:
        sys.exit(1)


def wait_ready(client: httpx.Client, timeout: float) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = client.get("/readyz")
            if response.status_code == 200 or time.monotonic() > deadline:
                return response
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
        time.sleep(2)


def main() -> None:
    key = Path(os.environ["SEMANTIK_TEST_KEY_FILE"]).read_text().strip()
    collection = os.environ.get("SEMANTIK_TEST_COLLECTION", "")
    with httpx.Client(base_url=os.environ["SEMANTIK_TEST_URL"], timeout=30) as client:
        ready = wait_ready(client, timeout=float(os.environ.get("SEMANTIK_TEST_READY_TIMEOUT", "120")))
        check("readyz", ready.status_code == 200, ready.text)
        anonymous = client.get("/api/v1/collections")
        check("no key is refused", anonymous.status_code == 401, str(anonymous.status_code))
        auth = {"Authorization": f"Bearer {key}"}
        listed = client.get("/api/v1/collections", headers=auth)
        check("the first API key is accepted", listed.status_code == 200, listed.text[:200])
        if collection:
            query = os.environ.get("SEMANTIK_TEST_QUERY", "license")
            found = client.post(f"/api/v1/collections/{collection}/search", json={"query": query, "k": 3}, headers=auth)
            hits = found.json().get("hits", []) if found.status_code == 200 else []
            check(f"search {collection!r} for {query!r}", bool(hits), found.text[:300])


if __name__ == "__main__":
    main()
