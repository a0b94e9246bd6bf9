"""Spooled's gRPC surface. Its message and stub modules are generated from spooled.proto, not committed: they are
made here on first import when missing or stale (spooled.grpc.codegen)."""

from spooled.grpc.codegen import ensure

ensure()
