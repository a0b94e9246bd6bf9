"""The embedded broker (config/broker.py): messages written under a temporary name and renamed into place still
reach consumers, every one whole, with several producers and a consumer running at once."""

from __future__ import annotations

import threading

from kombu import Connection

import config.celery  # noqa: F401  (registers the spindlefs:// transport)


def test_concurrent_publish_and_consume_delivers_every_message_whole(tmp_path):
    folders = {}
    for name in ("queue", "processed", "control"):
        (tmp_path / name).mkdir()
        folders[name] = str(tmp_path / name)
    options = {
        "data_folder_in": folders["queue"],
        "data_folder_out": folders["queue"],
        "processed_folder": folders["processed"],
        "control_folder": folders["control"],
        "store_processed": False,
    }
    per_producer, producers = 300, 4
    payload = {"blob": "x" * 20_000}  # big enough that a write is not one instant
    received: list[int] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def consume() -> None:
        try:
            with Connection("spindlefs://", transport_options=options) as conn:
                queue = conn.SimpleQueue("q")
                while len(received) < per_producer * producers and not done.is_set():
                    try:
                        message = queue.get(timeout=0.05)
                    except queue.Empty:
                        continue
                    assert message.payload["blob"] == payload["blob"]
                    received.append(message.payload["n"])
                    message.ack()
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    def produce(base: int) -> None:
        with Connection("spindlefs://", transport_options=options) as conn:
            queue = conn.SimpleQueue("q")
            for i in range(per_producer):
                queue.put({**payload, "n": base + i})

    consumer = threading.Thread(target=consume)
    consumer.start()
    threads = [threading.Thread(target=produce, args=(k * per_producer,)) for k in range(producers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    consumer.join(timeout=60)
    done.set()
    assert not errors, errors
    assert sorted(received) == list(range(per_producer * producers))
