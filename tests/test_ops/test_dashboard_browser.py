"""End to end in a real headless browser: log in to /ops/rq, requeue a failed job, see it finish.

A notifier job fails for real (the SMTP server answers 451 once, and the job has no
retries left), ops find it in the dashboard's failed registry and click Requeue
(the dashboard's own JavaScript POSTs, so the same-origin check must let it
through), a worker runs it, and the job page shows it finished. The side effect
happened exactly once: one email in the sink, the notification row sent.

Debian's chromium and chromedriver (`apt-get install chromium chromium-driver`),
driven by Selenium; skipped when they are missing, except under CI=true.
"""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from rq.job import Job
from rq.registry import FailedJobRegistry
from werkzeug.serving import make_server

from seatsvc import enqueue
from seatsvc.app import create_app
from seatsvc.runtime import Runtime
from tests import backends
from tests.helpers import Api
from tests.test_notifier.conftest import (  # noqa: F401  (fixtures)
    Notifier,
    RefusingSink,
    Sink,
    make_sink,
    notifier_factory,
    redis_conn,
    redis_url,
)
from tests.test_ops.conftest import OPS_PASSWORD, OPS_USER

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROME_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT = 30.0


@pytest.fixture
def browser() -> Iterator[Any]:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(path)]
    if missing:
        if backends.IN_CI:
            pytest.fail(f"CI=true needs chromium and chromedriver; missing {missing}")
        pytest.skip(f"no headless browser here ({', '.join(missing)}): apt-get install chromium")
    os.environ["SE_OFFLINE"] = "true"  # Selenium must never download a browser or driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="seatsvc-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*CHROME_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def serve() -> Iterator[Callable[[Any], str]]:
    """Serve a WSGI app on 127.0.0.1 from a thread; returns its base URL."""
    servers: list[Any] = []

    def start(app: Any) -> str:
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for server in servers:
        server.shutdown()


def wait_for(condition: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = condition()
        except Exception:  # the page is still loading or re-rendering its table
            found = None
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_ops_requeue_a_failed_notifier_job_in_the_browser(
    api: Api,
    runtime: Runtime,
    redis_conn: redis.Redis,  # noqa: F811
    notifier_factory: Callable[..., tuple[Notifier, Sink]],  # noqa: F811
    browser: Any,
    serve: Callable[[Any], str],
) -> None:
    from selenium.webdriver.common.by import By

    # A send job that fails for real: the mail server says "try later" once, no retries.
    notifier, sink = notifier_factory(RefusingSink("451 4.3.0 Mailbox busy, try later", 1), None)
    api.agency("clinic", seats=1)
    assert api.invite("amy").status_code == 201
    notifier.work()
    failed = FailedJobRegistry(queue=notifier.queue)
    (job_id,) = failed.get_job_ids()
    (row,) = notifier.rows("invite")
    assert (row.status, row.attempts) == ("pending", 1)
    assert sink.messages == []

    ops = Runtime(
        config=runtime.config.with_overrides(ops_username=OPS_USER, ops_password=OPS_PASSWORD),
        db=runtime.db,
        redis=redis_conn,
        dispatcher=runtime.dispatcher,
    )
    app = create_app(runtime=ops)
    app.config["RQ_DASHBOARD_POLL_INTERVAL"] = 500
    url = serve(app)

    # Not logged in: refused (Chrome keeps the 401 to itself and waits for credentials).
    browser.get(f"{url}/ops/rq/")
    assert "RQ dashboard" not in browser.title
    # Log in: basic auth on every request the page makes (its own XHRs included).
    token = base64.b64encode(f"{OPS_USER}:{OPS_PASSWORD}".encode()).decode()
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd(
        "Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {token}"}}
    )

    browser.get(f"{url}/ops/rq/")
    assert "RQ dashboard" in browser.title

    # The failed registry of the notifier's queue lists the job, with its error.
    browser.get(f"{url}/ops/rq/0/view/jobs/{notifier.queue_name}/failed/8/asc/1")
    row_selector = f'tr[data-job-id="{job_id}"]'
    job_row = wait_for(lambda: browser.find_element(By.CSS_SELECTOR, row_selector), "the job row")
    assert "451" in job_row.text
    assert "amy@staff.example" not in browser.page_source  # no address on the dashboard
    job_row.find_element(By.CSS_SELECTOR, '[data-role="requeue-job-btn"]').click()

    def status() -> str:
        job = Job.fetch(job_id, connection=redis_conn, serializer=enqueue.SERIALIZER)
        found = job.get_status(refresh=True)
        return str(getattr(found, "value", found))

    wait_for(lambda: status() == "queued", "the job to be queued again")
    assert failed.get_job_ids() == []
    wait_for(
        lambda: not browser.find_elements(By.CSS_SELECTOR, row_selector),
        "the row to leave the failed list",
    )

    # A worker runs it; the job's page shows it finished.
    browser.get(f"{url}/ops/rq/0/view/job/{job_id}")
    wait_for(lambda: "queued" in browser.find_element(By.ID, "job-data").text, "status queued")
    notifier.work()
    wait_for(lambda: "finished" in browser.find_element(By.ID, "job-data").text, "finished")
    assert status() == "finished"

    # Exactly once: one email, the row sent; running the queue again sends nothing.
    assert len(sink.messages) == 1
    (row,) = notifier.rows("invite")
    assert (row.status, row.attempts) == ("sent", 2)
    notifier.work()
    assert len(sink.messages) == 1
