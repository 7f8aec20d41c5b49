"""`ray start --address 127.0.0.1:PORT ...` for a second node on this machine, on loopback.

`ray start` refuses a second node unless Ray may form clusters
(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=1), and then turns 127.0.0.1 (in --address and
--node-ip-address) into the machine's outward address. Tests must stay on 127.0.0.1, so
this runs Ray's own `ray start` with both allowed and loopback kept as given.
Usage: python tests/raynode.py start --address=127.0.0.1:P --node-ip-address=127.0.0.1 ...
"""

from __future__ import annotations

import sys

from ray._private import ray_constants, services
from ray.scripts.scripts import main

ray_constants.ENABLE_RAY_CLUSTER = True
services.resolve_ip_for_localhost = lambda host: host

if __name__ == "__main__":
    sys.argv = ["ray", *sys.argv[1:]]
    main()
