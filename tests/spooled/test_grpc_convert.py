"""Jobs as Spooled's gRPC messages (spooled/grpc/convert.py): timestamps computed without Timestamp.FromDatetime
say exactly what it says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from google.protobuf import timestamp_pb2

from spooled.grpc.convert import timestamp


def test_timestamps_match_protobufs_own_conversion():
    values = [
        datetime(2026, 12, 7, 3, 4, 5, 123456, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC),  # before the epoch: nanos stay positive
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 6, 30, 12, 0, tzinfo=timezone(timedelta(hours=-7))),
        datetime(2026, 6, 30, 12, 0, 0, 1),  # naive: read as UTC
    ]
    for value in values:
        expected = timestamp_pb2.Timestamp()
        expected.FromDatetime(value)
        assert timestamp_pb2.Timestamp(**timestamp(value)) == expected, value
    assert timestamp(None) is None
