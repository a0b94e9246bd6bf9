"""Generate the gRPC modules from spooled/grpc/spooled.proto: `python -m spooled.grpc.codegen [OUT_DIR]`.

The generated `spooled_pb2.py` and `spooled_pb2_grpc.py` are committed beside the .proto (so the server needs
only grpcio and protobuf at run time); tests/spooled/test_grpc_codegen.py regenerates them into a temporary
directory with the pinned grpcio-tools and fails on any difference (ROADMAP "Generated code").
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTO = "spooled/grpc/spooled.proto"


def generate(out_dir: Path) -> list[Path]:
    """Write the two modules under `out_dir`/spooled/grpc/ and return their paths."""
    from grpc_tools import protoc  # dev dependency: only code generation needs it

    include = Path(protoc.__file__).parent / "_proto"  # google/protobuf/*.proto, shipped with grpcio-tools
    target = out_dir / "spooled" / "grpc"
    target.mkdir(parents=True, exist_ok=True)
    code = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{ROOT}",
            f"-I{include}",
            f"--python_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            str(ROOT / PROTO),
        ]
    )
    if code != 0:
        raise RuntimeError(f"protoc failed with exit code {code}")
    return [target / "spooled_pb2.py", target / "spooled_pb2_grpc.py"]


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT)
