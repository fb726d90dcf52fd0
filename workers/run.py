"""Start an RQ worker for seatsvc's queues: `python -m workers.run worker|notifier`.

The Procfile's `worker` (billing) and `notifier` processes. It loads `.env`,
builds one Runtime (config, database engine) for the jobs, uses the JSON
serializer, and runs rq's
scheduler alongside (RQ needs it for `Retry` intervals; rq's scheduler lock
keeps one active per queue however many workers run it).
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import structlog
from dotenv import load_dotenv
from rq import SimpleWorker, Worker
from rq.job import Job
from rq.queue import Queue

from seatsvc import metrics
from seatsvc.config import Config
from seatsvc.enqueue import BILLING_QUEUE, NOTIFIER_QUEUE, SERIALIZER, build_runtime, queue
from seatsvc.observability import configure_logging, init_sentry
from workers import context

ROLES = {"notifier": [NOTIFIER_QUEUE], "worker": [BILLING_QUEUE]}


class ObservedJobs:
    """Worker mixin: the causing request's id on the job's log lines, the job's duration.

    `execute_job` runs in the worker around the whole job; a forked work horse
    inherits what it bound. When the horse is gone, its metrics files are folded
    into this worker's (see `seatsvc.metrics.fold_process_files`).
    """

    _last_horse = 0

    def fork_work_horse(self, job: Job, queue: Queue) -> None:
        super().fork_work_horse(job, queue)  # type: ignore[misc]
        self._last_horse = int(getattr(self, "horse_pid", 0) or 0)  # rq forgets it after

    def execute_job(self, job: Job, queue: Queue) -> Any:
        request_id = (job.meta or {}).get("request_id")
        structlog.contextvars.bind_contextvars(job_id=job.id, queue=queue.name)
        if request_id:
            structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.monotonic()
        self._last_horse = 0
        try:
            return super().execute_job(job, queue)  # type: ignore[misc]
        finally:
            if self._last_horse:
                metrics.fold_process_files(self._last_horse, f"rqworker-{os.getpid()}")
            try:
                found = job.get_status(refresh=True)
                # No status left: the job ended and was deleted at once (result_ttl=0).
                status = str(getattr(found, "value", found) or "finished")
            except Exception:  # Redis hiccuped
                status = "unknown"
            metrics.JOB_DURATION.labels(
                queue=queue.name, func=str(job.func_name), status=status
            ).observe(time.monotonic() - started)
            structlog.contextvars.clear_contextvars()


class ObservedWorker(ObservedJobs, Worker):
    pass


class ObservedSimpleWorker(ObservedJobs, SimpleWorker):
    pass


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="seatsvc RQ worker")
    parser.add_argument("role", choices=sorted(ROLES), help="which worker to run")
    parser.add_argument(
        "--queue",
        action="append",
        dest="queues",
        help="listen on this queue instead (repeatable; tests use it)",
    )
    parser.add_argument("--burst", action="store_true", help="stop once the queues are empty")
    parser.add_argument(
        "--no-fork", action="store_true", help="run jobs in this process (rq's SimpleWorker)"
    )
    args = parser.parse_args(argv)

    load_dotenv()
    config = Config.from_env()
    if not config.redis_url:
        raise SystemExit("REDIS_URL is not set: a worker needs the Redis the web process uses")
    configure_logging()
    init_sentry(config.sentry_dsn)
    runtime = build_runtime(config)
    context.install(runtime)
    # Each forked work horse opens its own database connections.
    os.register_at_fork(after_in_child=lambda: runtime.db.engine.dispose(close=False))

    worker_class: type[Worker] | type[SimpleWorker] = (
        ObservedSimpleWorker if args.no_fork else ObservedWorker
    )
    names = args.queues or ROLES[args.role]
    if args.role == "worker":  # billing: the prices once, before the first fork
        context.prepare_gateway(runtime)
    worker = worker_class(
        [queue(runtime.redis, name) for name in names],
        connection=runtime.redis,
        serializer=SERIALIZER,
    )
    worker.work(burst=args.burst, with_scheduler=True, logging_level="INFO")


if __name__ == "__main__":
    main()
