"""The Procfile's forking worker: job metrics land in the shared multiprocess directory.

rq forks a work horse per job; `workers.run` folds each horse's files into its
own archive once the horse is gone, so the directory holds a few files per
worker, not one set per job, and the web's `/metrics` sums them.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest, multiprocess

from tests.helpers import Api
from tests.test_notifier.conftest import (  # noqa: F401  (fixtures)
    PROJECT_ROOT,
    Notifier,
    Sink,
    make_sink,
    notifier_factory,
    redis_conn,
    redis_url,
)
from tests.test_ops.test_metrics import samples, value


def test_forked_jobs_fold_into_the_workers_files(
    api: Api,
    notifier_factory: Callable[..., tuple[Notifier, Sink]],  # noqa: F811
    redis_url: str | None,  # noqa: F811
    tmp_path: Path,
) -> None:
    if redis_url is None:
        pytest.skip("a worker subprocess needs a real Redis")
    notifier, sink = notifier_factory()
    api.agency("clinic", seats=3)
    for member in ("m1", "m2", "m3"):
        assert api.invite(member).status_code == 201
    for _ in range(4):  # jobs that count something where they run: in the horse
        notifier.queue.enqueue("tests.test_ops.jobs.tick")
    assert len(notifier.queue.get_job_ids()) == 7

    env = notifier.worker_env(notifier.queue_name)
    env.update(REDIS_URL=redis_url, PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    worker = subprocess.run(
        [sys.executable, "-m", "workers.run", "notifier", "--burst",
         "--queue", notifier.queue_name],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert worker.returncode == 0, worker.stdout + worker.stderr
    assert len(sink.messages) == 3

    owners = {path.stem.split("_", 1)[1] for path in tmp_path.glob("*.db")}
    worker_pids = {owner.removeprefix("rqworker-") for owner in owners}
    assert len(worker_pids) == 1, owners  # the worker's own files, no horse's left
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(tmp_path))
    found = samples(generate_latest(registry).decode())
    count = value(
        found,
        "seatsvc_job_duration_seconds_count",
        queue=notifier.queue_name,
        func="workers.notifier.send_notification",
        status="finished",
    )
    assert count == 3
    ticks = value(found, "seatsvc_webhook_events_total", type="test.tick", result="processed")
    assert ticks == 4
    assert (tmp_path / f"counter_rqworker-{worker_pids.pop()}.db").exists()
    # The worker's log lines are JSON and carry no address.
    lines = [line for line in worker.stderr.splitlines() if line.strip()]
    assert lines and all(line.startswith("{") for line in lines), lines[:3]
    assert "@staff.example" not in worker.stderr + worker.stdout
