"""The committed gRPC modules are exactly what the pinned grpcio-tools generates from spooled/grpc/spooled.proto
(ROADMAP "Generated code": committed only if a test regenerates them and finds no diff)."""

from __future__ import annotations

from pathlib import Path

from spooled.grpc.codegen import ROOT, generate


def test_generated_modules_match_the_proto(tmp_path):
    for generated in generate(tmp_path):
        committed = ROOT / generated.relative_to(tmp_path)
        assert committed.read_bytes() == generated.read_bytes(), (
            f"{committed.relative_to(ROOT)} differs from what spooled/grpc/spooled.proto generates: "
            "run `python -m spooled.grpc.codegen` and commit the result"
        )
    assert {p.name for p in Path(ROOT / "spooled" / "grpc").glob("spooled_pb2*.py")} == {
        "spooled_pb2.py",
        "spooled_pb2_grpc.py",
    }
