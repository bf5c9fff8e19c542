"""slawatch-server: the gRPC API (TicketService, health, reflection).

With SLAWATCH_SERVER_PROCESSES=N (N > 1) it supervises N server processes sharing the port."""

from __future__ import annotations

import argparse
import sys

from internal.config.settings import OpsSettings, Settings, SettingsError, StreamOptions
from internal.config.sla_config import ConfigError
from internal.obs.logs import configure_logging
from internal.rpc import supervisor
from internal.rpc.server import SecurityConfigError, serve_forever


def main() -> int:
    argparse.ArgumentParser(description=__doc__).parse_args()
    try:
        settings = Settings.from_env()
        # Read again where they are used; refused here, before any server process starts.
        OpsSettings.from_env("server")
        StreamOptions.from_env()
    except SettingsError as err:
        print(f"slawatch-server: {err}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, "server")
    if not settings.database_url:
        print("slawatch-server: DATABASE_URL is required", file=sys.stderr)
        return 2
    if settings.server_processes > 1 and not supervisor.is_child():
        return supervisor.supervise(settings.server_processes, supervisor.own_command())
    try:
        serve_forever(settings)
    except ConfigError as err:
        print(
            f"slawatch-server: invalid SLA config {settings.sla_config_path}: {err}",
            file=sys.stderr,
        )
        return 2
    except (SecurityConfigError, SettingsError) as err:
        # Settings read as the server starts (streams, page tokens) fail like the others.
        print(f"slawatch-server: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
