"""GET /v1/queues/{name}/jobs, GET /v1/queues/{name}/jobs/{id}, GET /v1/jobs: filters, pagination, isolation."""

from __future__ import annotations

import pytest
from django.db import connection

from jobs.models import Job
from tests.factories import make_queue

pytestmark = pytest.mark.django_db

# Query counts are pinned on PostgreSQL; the embedded mode's database cache adds queries of its own.
ON_POSTGRES = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="query counts pinned on PostgreSQL"
)

URL = "/v1/queues/emails/jobs"


def _enqueue(client, jobs, queue="emails"):
    response = client.post(f"/v1/queues/{queue}/jobs/batch", {"jobs": jobs}, format="json")
    assert response.status_code == 201, response.content
    return [d["id"] for d in response.json()["data"]]


def test_get_job(api_client, queue):
    (job_id,) = _enqueue(api_client, [{"payload": {"a": 1}, "name": "x"}])
    response = api_client.get(f"{URL}/{job_id}")
    assert response.status_code == 200
    assert response.json()["id"] == job_id and response.json()["queue"] == "emails"
    assert response.json()["payload"] == {"a": 1}


def test_get_job_of_other_queue_or_workspace_is_404(
    api_client, other_workspace_client, workspace, queue, other_queue
):
    (job_id,) = _enqueue(api_client, [{}])
    make_queue(workspace, "second")
    assert api_client.get(f"/v1/queues/second/jobs/{job_id}").status_code == 404
    foreign = other_workspace_client.get(f"{URL}/{job_id}")
    assert foreign.status_code == 404
    assert foreign.json()["error"]["code"] == "NOT_FOUND"
    assert api_client.get(f"{URL}/job_00000000000000000000000000").status_code == 404


def test_list_is_newest_first_with_cursor_round_trip(api_client, queue):
    ids = _enqueue(api_client, [{"payload": i} for i in range(5)])
    seen: list[str] = []
    cursor = None
    for _ in range(3):
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api_client.get(URL, params)
        assert page.status_code == 200
        seen += [d["id"] for d in page.json()["data"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    assert cursor is None


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"limit": 1001}, "BAD_REQUEST"),
        ({"limit": 0}, "BAD_REQUEST"),
        ({"limit": "abc"}, "BAD_REQUEST"),
        ({"cursor": "!!!not-base64"}, "BAD_REQUEST"),
        ({"state": "sleeping"}, "BAD_REQUEST"),
    ],
)
def test_bad_query_parameters_are_400(api_client, queue, params, code):
    for url in (URL, "/v1/jobs"):
        response = api_client.get(url, params)
        assert response.status_code == 400, (url, response.content)
        assert response.json()["error"]["code"] == code


def test_limit_1000_is_fine(api_client, queue):
    assert api_client.get(URL, {"limit": 1000}).status_code == 200


def test_filters_state_tag_name_group(api_client, queue):
    ids = _enqueue(
        api_client,
        [
            {"name": "a", "tags": ["red", "big"], "group": "g1"},
            {"name": "b", "tags": ["red"], "delay_ms": 60_000},
            {"name": "a", "tags": ["blue"], "group": "g2"},
            {"name": "c", "tags": ["reddish"]},
        ],
    )

    def listed(**params):
        response = api_client.get(URL, params)
        assert response.status_code == 200, response.content
        return [d["id"] for d in response.json()["data"]]

    assert listed(tag="red") == [ids[1], ids[0]]
    assert listed(tag="blue") == [ids[2]]
    assert listed(tag="re") == []
    assert listed(state="delayed") == [ids[1]]
    assert listed(state="waiting") == [ids[3], ids[2], ids[0]]
    assert listed(state="completed") == []
    assert listed(name="a") == [ids[2], ids[0]]
    assert listed(group="g2") == [ids[2]]
    assert listed(name="a", tag="red", state="waiting") == [ids[0]]


def test_list_only_own_queue_and_workspace(api_client, other_workspace_client, workspace, queue, other_queue):
    make_queue(workspace, "second")
    mine = _enqueue(api_client, [{}])
    _enqueue(api_client, [{}], queue="second")
    _enqueue(other_workspace_client, [{}])
    response = api_client.get(URL)
    assert [d["id"] for d in response.json()["data"]] == mine
    assert api_client.get("/v1/queues/nope/jobs").status_code == 404


def test_all_jobs_across_queues_with_queue_filter(
    api_client, other_workspace_client, workspace, queue, other_queue
):
    make_queue(workspace, "second")
    first = _enqueue(api_client, [{"tags": ["x"]}])
    second = _enqueue(api_client, [{"tags": ["x"]}], queue="second")
    _enqueue(other_workspace_client, [{"tags": ["x"]}])
    everything = api_client.get("/v1/jobs").json()["data"]
    assert [(d["id"], d["queue"]) for d in everything] == [(second[0], "second"), (first[0], "emails")]
    only = api_client.get("/v1/jobs", {"queue": "second", "tag": "x"}).json()["data"]
    assert [d["id"] for d in only] == second
    assert api_client.get("/v1/jobs", {"queue": "nope"}).json()["data"] == []


@ON_POSTGRES
def test_list_query_count_is_constant(api_client, queue, django_assert_num_queries):
    _enqueue(api_client, [{"payload": i, "tags": ["t"]} for i in range(30)])
    api_client.get(URL)  # the first request of a key records last_used_at
    # API key, queue, one page of jobs.
    with django_assert_num_queries(3):
        response = api_client.get(URL, {"limit": 25, "tag": "t"})
    assert len(response.json()["data"]) == 25
    # API key, one page of jobs with their queue joined.
    with django_assert_num_queries(2):
        response = api_client.get("/v1/jobs", {"limit": 25})
    assert len(response.json()["data"]) == 25
    job_id = Job.objects.first().id
    # API key, the job with its queue joined (by name).
    with django_assert_num_queries(2):
        assert api_client.get(f"{URL}/{job_id}").status_code == 200
