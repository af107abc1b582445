"""`kopf run -m semantik_operator.main`: startup wiring, probes and the handlers' registration."""

from __future__ import annotations

import logging
from typing import Any

import kopf
from prometheus_client import start_http_server

from semantik_operator import handlers  # noqa: F401 - registers the handlers with kopf
from semantik_operator.gateway import Gateway
from semantik_operator.kube import Kube
from semantik_operator.settings import OperatorSettings


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
    config = OperatorSettings()
    settings.persistence.finalizer = "semantik.io/finalizer"
    settings.posting.level = logging.INFO
    # Progress of handlers lives in annotations, not in status (STYLE: status is the users' to read).
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="semantik.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="semantik.io")
    memo.settings = config
    memo.gateway = Gateway(
        config.gateway_url, config.internal_token.get_secret_value() if config.internal_token else None
    )
    memo.kube = await Kube.connect()
    start_http_server(config.metrics_port)


@kopf.on.cleanup()
async def cleanup(memo: Any, **_: Any) -> None:
    await memo.gateway.aclose()
    await memo.kube.aclose()


@kopf.on.probe(id="gateway")
async def gateway_reachable(memo: Any, **_: Any) -> bool:
    try:
        await memo.gateway.collection("-probe-")
    except Exception:
        return False
    return True
