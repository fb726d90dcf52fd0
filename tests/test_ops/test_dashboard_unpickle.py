"""The dashboard never unpickles a job, whatever a job's hash in Redis holds; nor can it be framed.

A pickle planted in Redis (as `data`, `meta` or a result) runs code when read with rq's
default serializer. Every dashboard page and data view must read jobs as JSON only
and answer a job it cannot decode without a 500.
"""

from __future__ import annotations

import os
import pickle
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from rq.registry import FailedJobRegistry

from seatsvc.runtime import Runtime
from tests.test_ops.conftest import basic

SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}


class _Trap:
    """Unpickling this creates `path` (standing in for any code an attacker picks)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.path,))


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "unpickled"


@pytest.fixture
def planted(runtime: Runtime, marker: Path) -> Iterator[tuple[str, str, str]]:
    """A queued job and a failed job whose data and meta are pickles, plus a worker
    whose current job is one of them."""
    connection: redis.Redis = runtime.redis
    queue_name = f"ops-pickle-{secrets.token_hex(4)}"
    trap = pickle.dumps(_Trap(marker))
    queued_id, failed_id = (f"planted-{secrets.token_hex(4)}" for _ in range(2))
    for job_id, status in ((queued_id, "queued"), (failed_id, "failed")):
        connection.hset(
            f"rq:job:{job_id}",
            mapping={
                "data": trap,
                "meta": trap,
                "origin": queue_name,
                "status": status,
                "description": "planted",
                "created_at": "2026-01-01T00:00:00.000000Z",
                "enqueued_at": "2026-01-01T00:00:00.000000Z",
            },
        )
    connection.sadd("rq:queues", f"rq:queue:{queue_name}")
    connection.rpush(f"rq:queue:{queue_name}", queued_id)
    connection.zadd(FailedJobRegistry(queue_name, connection=connection).key, {failed_id: 2e9})
    worker_key = f"rq:worker:planted-{secrets.token_hex(4)}"
    connection.hset(
        worker_key,
        mapping={
            "birth": "2026-01-01T00:00:00.000000Z",
            "last_heartbeat": "2026-01-01T00:00:00.000000Z",
            "queues": queue_name,
            "state": "busy",
            "current_job": failed_id,
            "pid": str(os.getpid()),
            "hostname": "planted",
        },
    )
    connection.sadd("rq:workers", worker_key)
    yield queue_name, queued_id, failed_id
    for key in connection.scan_iter(match=f"*{queue_name}*", count=500):
        connection.delete(key)
    connection.delete(f"rq:job:{queued_id}", f"rq:job:{failed_id}", worker_key)
    connection.srem("rq:queues", f"rq:queue:{queue_name}")
    connection.srem("rq:workers", worker_key)


def test_no_dashboard_view_unpickles_a_planted_job(
    ops_client: FlaskClient, planted: tuple[str, str, str], marker: Path
) -> None:
    queue_name, queued_id, failed_id = planted
    reads = [
        f"/ops/rq/0/view/job/{queued_id}",
        f"/ops/rq/0/view/job/{failed_id}",
        f"/ops/rq/0/data/job/{queued_id}.json",
        f"/ops/rq/0/data/job/{failed_id}.json",
        f"/ops/rq/0/data/jobs/{queue_name}/queued/8/asc/1.json",
        f"/ops/rq/0/data/jobs/{queue_name}/failed/8/asc/1.json",
        f"/ops/rq/0/view/jobs/{queue_name}/failed/8/asc/1",
        "/ops/rq/0/data/queues.json",
        "/ops/rq/0/data/workers.json",
        "/ops/rq/0/view/workers",
        "/ops/rq/",
    ]
    for path in reads:
        response = ops_client.get(path, headers=basic())
        assert response.status_code != 500, (path, response.data[:300])
        assert response.status_code < 500, path
        assert not marker.exists(), f"{path} unpickled the planted job"
    writes = [
        f"/ops/rq/job/{failed_id}/requeue",
        f"/ops/rq/requeue/{queue_name}",
        f"/ops/rq/job/{queued_id}/delete",
        f"/ops/rq/queue/{queue_name}/failed/empty",
        f"/ops/rq/queue/{queue_name}/queued/empty",
    ]
    for path in writes:
        response = ops_client.post(path, headers={**basic(), **SAME_ORIGIN})
        assert response.status_code < 500, (path, response.data[:300])
        assert not marker.exists(), f"{path} unpickled the planted job"


def test_a_job_that_is_not_json_is_refused_plainly(
    ops_client: FlaskClient, planted: tuple[str, str, str], marker: Path
) -> None:
    _, _, failed_id = planted
    response = ops_client.get(f"/ops/rq/0/data/job/{failed_id}.json", headers=basic())
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "undecodable_job"
    assert not marker.exists()


@pytest.mark.parametrize("path", ["/ops/rq/", "/ops/rq/0/view/workers", "/healthz"])
def test_no_page_may_be_framed(ops_client: FlaskClient, path: str) -> None:
    response = ops_client.get(path, headers=basic())
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_the_refusal_of_credentials_cannot_be_framed_either(ops_client: FlaskClient) -> None:
    response = ops_client.get("/ops/rq/")
    assert response.status_code == 401
    assert response.headers["X-Frame-Options"] == "DENY"
