"""`faststream run services.x:app`: serve where the settings say, and advertise where it serves.

FastStream's CLI runs the app with uvicorn on its `--host`/`--port` options, or on uvicorn's own
defaults (127.0.0.1:8000) without them, and never tells the app which. `ServedApp.run` fills in
MESH_HTTP_HOST and MESH_HTTP_PORT where the options say nothing (what `mesh run` does too) and
reports the address before the app starts, so the instance advertises the port it listens on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from bus.http import ServiceApp
from bus.settings import BusSettings


class ServedApp(ServiceApp):
    """The service's ASGI app; `run` is what `faststream run` calls (uvicorn and `mesh run` don't)."""

    def __init__(
        self, *brokers: Any, settings: BusSettings, serve_at: Callable[[str, int], None], **options: Any
    ) -> None:
        super().__init__(*brokers, **options)
        self._settings = settings
        self._serve_at = serve_at

    async def run(self, log_level: int = logging.INFO, run_extra_options: dict[str, Any] | None = None) -> None:
        options = {"host": self._settings.http_host, "port": self._settings.http_port, **(run_extra_options or {})}
        self._serve_at(str(options["host"]), int(options["port"]))
        await super().run(log_level, options)
