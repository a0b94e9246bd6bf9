"""Issue 18 (schema): a client generated from the document by openapi-python-client works against a live server.

Generated into a temporary directory on every run (nothing generated is committed), without a single warning;
then create, get and list calls must come back as typed models, lists included (they were declared as arrays of
envelopes once, and a generated client raised on every list).
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from accounts.services import workspace_create

BIN = Path(sys.executable).parent
PACKAGE = "spindle_generated_client"


@pytest.fixture
def generated(tmp_path: Path) -> Any:
    document = APIClient().get("/openapi.json").json()
    (tmp_path / "openapi.json").write_text(json.dumps(document))
    result = subprocess.run(
        [
            str(BIN / "openapi-python-client"),
            "generate",
            "--path",
            str(tmp_path / "openapi.json"),
            "--meta",
            "none",
            "--output-path",
            str(tmp_path / PACKAGE),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"},  # its ruff post-hook
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Warning" not in output and "warning" not in output, output
    sys.path.insert(0, str(tmp_path))
    yield lambda name: importlib.import_module(f"{PACKAGE}.{name}")
    sys.path.remove(str(tmp_path))
    for module in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
        del sys.modules[module]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_generated_client_creates_gets_and_lists(generated, live_server, plans):
    _, key = workspace_create(name="generated", plan_code="pro")
    # Closed at the end: a kept-alive connection would hold a live-server thread and its database session.
    with generated("client").AuthenticatedClient(
        base_url=live_server.url, token=key.raw, raise_on_unexpected_status=True
    ) as client:
        models = generated("models")
        api = "api.{}.{}"

        queue = generated(api.format("queues", "queues_create")).sync(
            client=client, body=models.QueueInRequest(name="emails", delivery=models.DeliveryEnum.PULL)
        )
        assert isinstance(queue, models.QueueWithSecretSchema) and queue.name == "emails"

        enqueue = generated(api.format("jobs", "jobs_enqueue"))
        job = enqueue.sync(
            "emails", client=client, body=models.JobEnqueueInRequest(name="welcome", payload={"user_id": 42})
        )
        assert isinstance(job, models.JobSchema) and job.id.startswith("job_")
        enqueue.sync("emails", client=client, body=models.JobEnqueueInRequest(name="other", payload={}))

        got = generated(api.format("jobs", "jobs_retrieve")).sync("emails", job.id, client=client)
        assert isinstance(got, models.JobSchema) and got.id == job.id and got.payload == {"user_id": 42}

        # The lists: the object envelope, parsed; the path parameter and the `name` filter side by side.
        listed = generated(api.format("jobs", "jobs_list")).sync(
            "emails", client=client, name="welcome", limit=10
        )
        assert isinstance(listed, models.JobList)
        assert [j.id for j in listed.data] == [job.id] and listed.next_cursor is None
        queues = generated(api.format("queues", "queues_list")).sync(client=client)
        assert [q.name for q in queues.data] == ["emails"]

        missing = generated(api.format("jobs", "jobs_retrieve")).sync("emails", "job_missing", client=client)
        assert isinstance(missing, models.ErrorEnvelope) and missing.error.code == "NOT_FOUND"
