"""`/ops/rq`: basic auth, off without a password, same-origin POSTs only, our Redis."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
import redis
from flask.testing import FlaskClient
from rq import Queue
from rq.job import Job
from rq.registry import FailedJobRegistry

from seatsvc import enqueue
from seatsvc.app import create_app
from seatsvc.config import Config
from seatsvc.ops import credentials_ok
from seatsvc.runtime import Runtime
from tests.test_ops.conftest import OPS_PASSWORD, basic, ops_runtime
from workers.run import ObservedSimpleWorker

PAGES = ["/ops/rq", "/ops/rq/", "/ops/rq/0/view/workers", "/ops/rq/0/data/queues.json"]


def error_code(response: object) -> str:
    body = response.get_json()  # type: ignore[attr-defined]
    assert set(body["error"]) == {"code", "message", "details"}
    return str(body["error"]["code"])


@pytest.mark.parametrize("path", PAGES)
def test_without_credentials_every_page_asks_for_them(ops_client: FlaskClient, path: str) -> None:
    response = ops_client.get(path)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic ")
    assert error_code(response) == "unauthorized"


@pytest.mark.parametrize(
    "headers",
    [
        basic(password="wrong"),
        basic(user="admin"),
        basic(password=OPS_PASSWORD + "x"),
        basic(password=OPS_PASSWORD[:-1]),
        basic(password=""),
        {"Authorization": f"Bearer {OPS_PASSWORD}"},
    ],
)
def test_wrong_credentials_are_refused(ops_client: FlaskClient, headers: dict[str, str]) -> None:
    response = ops_client.get("/ops/rq/", headers=headers)
    assert response.status_code == 401
    assert error_code(response) == "unauthorized"


def test_the_right_credentials_open_the_dashboard(ops_client: FlaskClient) -> None:
    page = ops_client.get("/ops/rq/", headers=basic())
    assert page.status_code == 200
    assert b"RQ dashboard" in page.data or b"rq-dashboard" in page.data.lower()
    queues_json = ops_client.get("/ops/rq/0/data/queues.json", headers=basic())
    assert queues_json.status_code == 200
    assert "queues" in queues_json.get_json()
    script = ops_client.get("/ops/rq/static/js/jquery-3.5.1.min.js", headers=basic())
    assert script.status_code == 200


def test_credentials_ok_needs_a_configured_password() -> None:
    config = Config(ops_username="ops", ops_password=None)
    assert not credentials_ok("ops", "", config)
    config = Config(ops_username="ops", ops_password="pw")
    assert credentials_ok("ops", "pw", config)
    assert not credentials_ok("ops", "pw ", config)
    assert not credentials_ok("Ops", "pw", config)


def test_without_a_password_the_dashboard_is_not_there(runtime: Runtime) -> None:
    client = create_app(runtime=ops_runtime(runtime, password=None)).test_client()
    for path in PAGES:
        for headers in ({}, basic()):
            response = client.get(path, headers=headers)
            assert response.status_code == 404, path
            assert error_code(response) == "not_found"


def test_another_redis_instance_number_is_refused(ops_client: FlaskClient) -> None:
    response = ops_client.get("/ops/rq/1/data/queues.json", headers=basic())
    assert response.status_code == 404


# ---- cross-site requests -----------------------------------------------------------------


def failed_job(connection: redis.Redis, queue_name: str) -> str:
    """A job in the failed registry of `queue_name` (it ran for real and raised)."""
    queue = enqueue.queue(connection, queue_name)
    job = queue.enqueue(
        "tests.test_ops.jobs.explode", "x@example.com", "tok", meta={"request_id": "r-42"}
    )
    worker = ObservedSimpleWorker([queue], connection=connection, serializer=enqueue.SERIALIZER)
    worker.work(burst=True, logging_level="ERROR")
    assert FailedJobRegistry(queue=queue).get_job_ids() == [job.id]
    return str(job.id)


@pytest.fixture
def queue_name(runtime: Runtime) -> Iterator[str]:
    name = f"ops-test-{secrets.token_hex(4)}"
    yield name
    for key in runtime.redis.scan_iter(match=f"*{name}*", count=500):
        runtime.redis.delete(key)
    runtime.redis.srem("rq:queues", f"rq:queue:{name}")


CROSS_SITE = [
    {},  # no Origin, Referer or Sec-Fetch-Site at all: a non-browser or an old one
    {"Origin": "https://evil.example"},
    {"Origin": "null"},
    {"Referer": "https://evil.example/ops/rq/"},
    {"Sec-Fetch-Site": "cross-site", "Origin": "http://localhost"},
    {"Sec-Fetch-Site": "same-site"},
    {"Origin": "http://localhost.evil.example"},
]
SAME_ORIGIN = [
    {"Sec-Fetch-Site": "same-origin"},
    {"Origin": "http://localhost"},
    {"Referer": "http://localhost/ops/rq/0/view/jobs"},
]


@pytest.mark.parametrize("headers", CROSS_SITE)
def test_cross_site_posts_are_refused_and_change_nothing(
    ops_client: FlaskClient, runtime: Runtime, queue_name: str, headers: dict[str, str]
) -> None:
    job_id = failed_job(runtime.redis, queue_name)
    for path in (
        f"/ops/rq/job/{job_id}/requeue",
        f"/ops/rq/job/{job_id}/delete",
        f"/ops/rq/requeue/{queue_name}",
        f"/ops/rq/queue/{queue_name}/failed/empty",
    ):
        response = ops_client.post(path, headers={**basic(), **headers})
        assert response.status_code == 403, (path, headers)
        assert error_code(response) == "forbidden"
    queue = Queue(queue_name, connection=runtime.redis, serializer=enqueue.SERIALIZER)
    assert FailedJobRegistry(queue=queue).get_job_ids() == [job_id]
    assert queue.get_job_ids() == []


@pytest.mark.parametrize("headers", SAME_ORIGIN)
def test_same_origin_posts_requeue(
    ops_client: FlaskClient, runtime: Runtime, queue_name: str, headers: dict[str, str]
) -> None:
    job_id = failed_job(runtime.redis, queue_name)
    response = ops_client.post(f"/ops/rq/job/{job_id}/requeue", headers={**basic(), **headers})
    assert response.status_code == 200, response.data
    queue = Queue(queue_name, connection=runtime.redis, serializer=enqueue.SERIALIZER)
    assert FailedJobRegistry(queue=queue).get_job_ids() == []
    assert queue.get_job_ids() == [job_id]
    # Still a JSON job our workers can read (rq-dashboard alone would re-save it pickled).
    requeued = Job.fetch(job_id, connection=runtime.redis, serializer=enqueue.SERIALIZER)
    assert requeued.get_meta(refresh=True)["request_id"] == "r-42"
    assert requeued.args == ["x@example.com", "tok"]


def test_requeue_all_by_get_is_refused(
    ops_client: FlaskClient, runtime: Runtime, queue_name: str
) -> None:
    """rq-dashboard also answers GET on `requeue/<queue>`: an <img> could trigger it."""
    job_id = failed_job(runtime.redis, queue_name)
    response = ops_client.get(
        f"/ops/rq/requeue/{queue_name}", headers={**basic(), "Sec-Fetch-Site": "same-origin"}
    )
    assert response.status_code == 405
    queue = Queue(queue_name, connection=runtime.redis, serializer=enqueue.SERIALIZER)
    assert FailedJobRegistry(queue=queue).get_job_ids() == [job_id]
    assert ops_client.post(
        f"/ops/rq/requeue/{queue_name}", headers={**basic(), "Sec-Fetch-Site": "same-origin"}
    ).get_json() == {"count": 1, "status": "OK"}
    requeued = Job.fetch(job_id, connection=runtime.redis, serializer=enqueue.SERIALIZER)
    assert requeued.get_meta(refresh=True)["request_id"] == "r-42"


def test_delete_from_the_dashboard(
    ops_client: FlaskClient, runtime: Runtime, queue_name: str
) -> None:
    job_id = failed_job(runtime.redis, queue_name)
    response = ops_client.post(
        f"/ops/rq/job/{job_id}/delete", headers={**basic(), "Sec-Fetch-Site": "same-origin"}
    )
    assert response.get_json() == {"status": "OK"}
    queue = Queue(queue_name, connection=runtime.redis, serializer=enqueue.SERIALIZER)
    assert FailedJobRegistry(queue=queue).get_job_ids() == []


def test_unauthenticated_posts_are_refused_before_the_origin_check(
    ops_client: FlaskClient, runtime: Runtime, queue_name: str
) -> None:
    job_id = failed_job(runtime.redis, queue_name)
    response = ops_client.post(
        f"/ops/rq/job/{job_id}/requeue", headers={"Sec-Fetch-Site": "same-origin"}
    )
    assert response.status_code == 401


def test_the_dashboard_reads_our_json_jobs(
    ops_client: FlaskClient, runtime: Runtime, queue_name: str
) -> None:
    job_id = failed_job(runtime.redis, queue_name)
    listing = ops_client.get(
        f"/ops/rq/0/data/jobs/{queue_name}/failed/8/asc/1.json", headers=basic()
    )
    assert listing.status_code == 200
    (job,) = listing.get_json()["jobs"]
    assert job["id"] == job_id
    assert "RuntimeError" in job["exc_info"]
    info = ops_client.get(f"/ops/rq/0/data/job/{job_id}.json", headers=basic())
    assert info.status_code == 200
    assert info.get_json()["status"] == "failed"
    page = ops_client.get(f"/ops/rq/0/view/job/{job_id}", headers=basic())
    assert page.status_code == 200
