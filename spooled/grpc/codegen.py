"""Generate the gRPC modules from spooled/grpc/spooled.proto: `python -m spooled.grpc [OUT_DIR]`.

The generated `spooled_pb2.py` and `spooled_pb2_grpc.py` are not committed (ROADMAP "Generated code"): the
Makefile's install steps and the Dockerfile run this module, with grpcio-tools (a runtime dependency, pinned to
grpcio's version). Importing `spooled.grpc` calls `ensure()`, which generates them when they are missing or
older than the .proto, so a fresh checkout or an edited .proto never runs stale stubs. Each process generates
into a temporary directory beside the package and moves the files in with `os.replace`, so processes that start
together never read a half-written module. tests/spooled/test_grpc_codegen.py regenerates them and compares.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTO = "spooled/grpc/spooled.proto"
MODULES = ("spooled_pb2.py", "spooled_pb2_grpc.py")


def generate(out_dir: Path, *, root: Path = ROOT) -> list[Path]:
    """Write the two modules under `out_dir`/spooled/grpc/ (from `root`'s .proto) and return their paths."""
    from grpc_tools import protoc

    include = Path(protoc.__file__).parent / "_proto"  # google/protobuf/*.proto, shipped with grpcio-tools
    target = out_dir / "spooled" / "grpc"
    target.mkdir(parents=True, exist_ok=True)
    code = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{root}",
            f"-I{include}",
            f"--python_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            str(root / PROTO),
        ]
    )
    if code != 0:
        raise RuntimeError(f"protoc failed with exit code {code}")
    return [target / name for name in MODULES]


def install(root: Path = ROOT) -> list[Path]:
    """Generate the modules into `root`'s package, each file moved in whole (safe with concurrent processes)."""
    package = (root / PROTO).parent
    with tempfile.TemporaryDirectory(dir=package, prefix=".codegen-") as tmp:
        for made in generate(Path(tmp), root=root):
            os.replace(made, package / made.name)
    return [package / name for name in MODULES]


def stale(root: Path = ROOT) -> bool:
    """Whether a generated module is missing or older than the .proto."""
    proto = root / PROTO
    try:
        built = min((proto.parent / name).stat().st_mtime for name in MODULES)
    except FileNotFoundError:
        return True
    return built < proto.stat().st_mtime


def ensure(root: Path = ROOT) -> None:
    """Generate the modules if they are missing or stale; a clear ImportError if that cannot be done here."""
    if not stale(root):
        return
    try:
        install(root)
    except (ImportError, OSError, RuntimeError) as exc:
        raise ImportError(
            f"spooled/grpc/spooled_pb2*.py are missing or older than {PROTO} and could not be generated "
            f"({exc}): run `python -m spooled.grpc` with grpcio-tools installed (`make install` does)"
        ) from exc
