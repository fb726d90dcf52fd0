"""Start an RQ worker for seatsvc's queues: `python -m workers.run worker|notifier`.

The Procfile's `worker` (billing) and `notifier` processes. It loads `.env`,
builds one Runtime (config, database engine) for the jobs, uses the JSON
serializer, and runs rq's
scheduler alongside (RQ needs it for `Retry` intervals; rq's scheduler lock
keeps one active per queue however many workers run it).
"""

from __future__ import annotations

import argparse
import logging
import os

from dotenv import load_dotenv
from rq import SimpleWorker, Worker

from seatsvc.config import Config
from seatsvc.runtime import Runtime
from workers import billing, context, queues

ROLES = {"notifier": [queues.NOTIFIER_QUEUE], "worker": [billing.BILLING_QUEUE]}


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
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    runtime = Runtime.build(config)
    context.install(runtime)
    # Each forked work horse opens its own database connections.
    os.register_at_fork(after_in_child=lambda: runtime.db.engine.dispose(close=False))

    worker_class = SimpleWorker if args.no_fork else Worker
    names = args.queues or ROLES[args.role]
    worker = worker_class(
        [queues.queue(runtime.redis, name) for name in names],
        connection=runtime.redis,
        serializer=queues.SERIALIZER,
    )
    worker.work(burst=args.burst, with_scheduler=True, logging_level="INFO")


if __name__ == "__main__":
    main()
