"""`python -m spooled.grpc [OUT_DIR]`: (re)generate the gRPC modules from spooled.proto, into the package (what
`make install` and the Dockerfile run) or under OUT_DIR (spooled.grpc.codegen)."""

import sys
from pathlib import Path

from spooled.grpc.codegen import generate, install

if len(sys.argv) > 1:
    generate(Path(sys.argv[1]))
else:
    install()
