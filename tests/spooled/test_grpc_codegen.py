"""The gRPC modules are generated from spooled/grpc/spooled.proto, not committed (ROADMAP "Generated code"):
what the package imports is what the pinned grpcio-tools makes of the .proto, and a checkout without them (or
with a .proto edited since) gets them made on first import."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from spooled.grpc import codegen
from spooled.grpc.codegen import MODULES, PROTO, ROOT, ensure, generate, stale


def _checkout(tmp_path: Path) -> Path:
    """A directory holding only the .proto, where the package would be."""
    root = tmp_path / "checkout"
    (root / PROTO).parent.mkdir(parents=True)
    shutil.copy(ROOT / PROTO, root / PROTO)
    return root


def test_imported_modules_are_what_the_proto_generates(tmp_path):
    from spooled.grpc import spooled_pb2, spooled_pb2_grpc

    for generated in generate(tmp_path):
        imported = {"spooled_pb2.py": spooled_pb2, "spooled_pb2_grpc.py": spooled_pb2_grpc}[generated.name]
        assert Path(imported.__file__).read_bytes() == generated.read_bytes(), (
            f"{generated.name} differs from what {PROTO} generates: run `python -m spooled.grpc`"
        )
    assert spooled_pb2.DESCRIPTOR.package == "spooled.v1"
    assert {"QueueService", "WorkerService"} <= set(spooled_pb2.DESCRIPTOR.services_by_name)


def test_generated_modules_are_not_committed():
    tracked = subprocess.run(
        ["git", "ls-files", "spooled/grpc"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert not [path for path in tracked if Path(path).name in MODULES]
    ignored = subprocess.run(
        ["git", "check-ignore", *(f"spooled/grpc/{name}" for name in MODULES)], cwd=ROOT, capture_output=True
    )
    assert ignored.returncode == 0


def test_ensure_generates_missing_modules_and_regenerates_stale_ones(tmp_path):
    root = _checkout(tmp_path)
    package = (root / PROTO).parent
    assert stale(root)
    ensure(root)
    assert not stale(root)
    assert (package / "spooled_pb2_grpc.py").read_bytes() == (
        ROOT / "spooled/grpc/spooled_pb2_grpc.py"
    ).read_bytes()
    assert not list(package.glob(".codegen-*"))  # the temporary directory is gone

    (package / "spooled_pb2.py").write_text("# stale\n")
    proto_time = (root / PROTO).stat().st_mtime
    os.utime(package / "spooled_pb2.py", (proto_time - 10, proto_time - 10))
    assert stale(root)
    ensure(root)
    assert (package / "spooled_pb2.py").read_bytes() == (ROOT / "spooled/grpc/spooled_pb2.py").read_bytes()


def test_without_grpcio_tools_the_import_error_says_how_to_generate(tmp_path, monkeypatch):
    root = _checkout(tmp_path)
    monkeypatch.setitem(sys.modules, "grpc_tools", None)  # `import grpc_tools` now raises ImportError
    with pytest.raises(ImportError, match=r"python -m spooled\.grpc"):
        ensure(root)
    assert codegen.stale(root)
