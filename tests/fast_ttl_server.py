"""SecantusDB with a half-second TTL sweep, for the retention test.

`python -m secantus` reads `ttl_sweep_seconds` from its config file but does
not pass it on (SecantusDB 0.7.0b3), so the sweep would run only every 60 s.
Usage: python tests/fast_ttl_server.py PORT STORAGE_PATH
"""

from __future__ import annotations

import signal
import sys

from secantus.server import SecantusDBServer

if __name__ == "__main__":
    port, storage = int(sys.argv[1]), sys.argv[2]
    server = SecantusDBServer(
        host="127.0.0.1",
        port=port,
        storage_path=storage,
        replica_set_name="secantus",
        ttl_sweep_seconds=0.5,
    )
    signal.signal(signal.SIGTERM, lambda *_: (server.stop(), sys.exit(0)))
    server.start()
    server.wait()
