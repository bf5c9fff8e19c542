"""slawatch-config: check an SLA config file offline, or preview what saving it would do.

slawatch-config check FILE|DIR     exit 0 valid, 1 invalid (the reload's messages), 2 unreadable
slawatch-config preview FILE --server HOST:PORT
                                   the changes to the tenant's open tickets (token in
                                   SLAWATCH_TOKEN, role admin); exit 0, 1 invalid, 2 failed"""

from __future__ import annotations

import sys

from internal.cli.config_tool import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
