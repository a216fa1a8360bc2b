"""`stamdata-importer serve`: the read-only façades and /status without the importer, for query-only hosts.

/status reads the import status tables through the façade account too (a query-only host may have no other),
so it reports on the imports another host runs. uvicorn runs in the main thread and owns SIGTERM/SIGINT.
"""

import dataclasses

import uvicorn

from importer.clock import SystemClock
from importer.config import Settings
from importer.errors import InfrastructureError
from importer.facades import FacadeDatabase
from importer.health import HealthChecker
from importer.logs import get_logger
from importer.plugin import Register
from importer.web import create_app, parse_listen

log = get_logger(__name__)


def serve(settings: Settings, registers: dict[str, Register]) -> None:
    facades = FacadeDatabase(settings.facade_database_url)
    health = HealthChecker(dataclasses.replace(settings, production_url=settings.facade_database_url), registers,
                           SystemClock())
    app = create_app(health, None, facades, list(registers.values()))
    host, port = parse_listen(settings.listen)
    # uvicorn's access log would print request paths, CPR numbers included; the app logs them masked.
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False,
                                           lifespan="off"))
    log.info("serving façades", listen=settings.listen, registers=list(registers))
    try:
        server.run()
    except (OSError, SystemExit) as error:
        raise InfrastructureError(f"cannot serve HTTP on {settings.listen}: {error}") from None
    finally:
        facades.close()
        health.close()
    if not server.started:
        raise InfrastructureError(f"cannot serve HTTP on {settings.listen}")
    log.info("façades stopped")
