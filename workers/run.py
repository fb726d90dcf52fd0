"""Start an RQ worker for seatsvc's queues: `python -m workers.run worker|notifier`.

The Procfile's `worker` (billing) and `notifier` processes. It loads `.env`,
builds one Runtime (config, database engine) for the jobs and uses the JSON
serializer. Recovery is quick and needs no other process (see `workers.recovery`):
a running job heartbeats every few seconds, an idle worker wakes every few seconds,
and each wake-up requeues jobs abandoned by a dead worker and moves due retries
into the queue (instead of rq's scheduler process and its 61-second lock).
A Redis outage ends rq's work loop; `workers.supervise` starts a fresh worker
after a capped backoff, so the process never exits on its own.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from contextlib import suppress
from types import FrameType
from typing import Any

import redis
import structlog
from dotenv import load_dotenv
from rq import SimpleWorker, Worker, worker_registration
from rq.exceptions import StopRequested
from rq.job import Job
from rq.queue import Queue

from seatsvc import metrics
from seatsvc.config import Config
from seatsvc.enqueue import BILLING_QUEUE, NOTIFIER_QUEUE, SERIALIZER, build_runtime, queue
from seatsvc.observability import configure_logging, init_sentry
from workers import context, recovery
from workers.supervise import Supervisor

log = logging.getLogger(__name__)

ROLES = {"notifier": [NOTIFIER_QUEUE], "worker": [BILLING_QUEUE]}

# How fast a dead worker's job is noticed: the running job's heartbeat every
# HEARTBEAT_SECONDS, its registry entry expiring HEARTBEAT_GRACE after the last one
# (rq's own margin is 60 s), and every idle worker waking every WORKER_TTL - 15 s.
HEARTBEAT_SECONDS = 5
HEARTBEAT_GRACE = 15
WORKER_TTL = 20
MAINTENANCE_SECONDS = 5


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


class RecoveringJobs:
    """Worker mixin: the quick recovery at every maintenance, registering again after
    Redis came back empty, and a teardown that survives Redis being away (so a
    supervised restart leaves no pubsub thread behind)."""

    # rq's own wait between reconnection attempts while dequeuing (its default is 60 s).
    max_connection_wait_time = 10.0

    def run_maintenance_tasks(self) -> None:
        self._register_again()
        for target in self.queues:  # type: ignore[attr-defined]
            recovery.recover(target)
        super().run_maintenance_tasks()  # type: ignore[misc]

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        """SIGTERM: rq asks Redis whether a job is running first; with Redis away that
        question fails inside its reconnect loop, which would swallow the stop."""
        try:
            super().request_stop(signum, frame)  # type: ignore[misc]
        except (redis.RedisError, OSError):
            raise StopRequested from None

    def _register_again(self) -> None:
        """A Redis restarted empty forgot this worker; rq's idle heartbeat does not
        recreate it, so the dashboard and `rq info` would not list it."""
        connection = self.connection  # type: ignore[attr-defined]
        key = self.key  # type: ignore[attr-defined]
        if connection.sismember(worker_registration.REDIS_WORKER_KEYS, key):
            return
        if getattr(self, "birth_date", None) is None:
            return  # not born yet: bootstrap registers it
        with connection.pipeline() as pipeline:
            pipeline.hset(key, mapping=self.serialize())  # type: ignore[attr-defined]
            pipeline.expire(key, WORKER_TTL + 60)
            worker_registration.register(self, pipeline)  # type: ignore[arg-type]
            pipeline.execute()
        log.warning("worker %s registered again (Redis had forgotten it)", key)

    def teardown(self) -> None:
        if getattr(self, "is_horse", False):
            return
        with suppress(redis.RedisError, OSError):
            self.register_death()  # type: ignore[attr-defined]
        with suppress(redis.RedisError, OSError, RuntimeError):
            self.unsubscribe()  # type: ignore[attr-defined]


class ObservedWorker(RecoveringJobs, ObservedJobs, Worker):
    # Work horses forked by this process that may outlive their worker object: one
    # whose loop ended mid-job (Redis went away) never waits for its horse.
    horses: set[int] = set()

    def fork_work_horse(self, job: Job, queue: Queue) -> None:
        super().fork_work_horse(job, queue)
        ObservedWorker.horses.add(int(self.horse_pid or 0))

    def run_maintenance_tasks(self) -> None:
        for pid in list(ObservedWorker.horses):  # idle here: none of them is ours now
            try:
                done = os.waitpid(pid, os.WNOHANG)[0] == pid
            except ChildProcessError:
                done = True  # rq waited for it already
            if done:
                ObservedWorker.horses.discard(pid)
        super().run_maintenance_tasks()

    def get_heartbeat_ttl(self, job: Job) -> int:
        """rq adds 60 s to the monitoring interval: a dead worker's job would look alive
        for over a minute. The heartbeat comes every HEARTBEAT_SECONDS; a short grace will do."""
        return max(int(super().get_heartbeat_ttl(job)) - 60, 0) + HEARTBEAT_GRACE


class ObservedSimpleWorker(RecoveringJobs, ObservedJobs, SimpleWorker):
    pass  # runs jobs in-process, without heartbeats: rq's longer TTL (job timeout + 60 s) stays


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
    supervisor = Supervisor(f"rq worker ({args.role})")

    def once() -> bool:
        """One rq worker's life; True when it ended on purpose (burst done, SIGTERM)."""
        worker = worker_class(
            [queue(runtime.redis, name) for name in names],
            connection=runtime.redis,
            serializer=SERIALIZER,
            worker_ttl=WORKER_TTL,
            job_monitoring_interval=HEARTBEAT_SECONDS,
            maintenance_interval=MAINTENANCE_SECONDS,
        )
        try:
            worker.work(burst=args.burst, logging_level="INFO")
        except Exception:
            if worker._shutdown_requested_date is None:
                raise
            # A stop was asked for while Redis was away: rq's goodbye failed, we still stop.
        return args.burst or worker._shutdown_requested_date is not None

    supervisor.run(once)


if __name__ == "__main__":
    main()
