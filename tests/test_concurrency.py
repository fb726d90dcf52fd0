"""Invariants 1 and 2 of DESIGN.md under real concurrency.

A real gunicorn (3 worker processes x 8 threads) serves the app on the test
database; bursts of requests come at once from two client OS processes, each
with a thread per request. After every test the database itself is asked
whether any agency holds more seats than it bought.
"""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import Engine, text

from seatsvc.runtime import Runtime
from seatsvc.services.invites import invite_token
from tests import backends
from tests.conftest import API_TOKEN, SECRET_KEY
from tests.live_server import Call, LiveServer, Reply, burst, in_threads, send, start_gunicorn
from tests.test_billing.conftest import postgres_only

pytestmark = pytest.mark.slow

CLIENT_PROCESSES = 2
AGENCY = "clinic"
AGENCY_PATH = f"/v1/agencies/{AGENCY}"


@pytest.fixture(scope="module")
def server(
    database: backends.TestDatabase, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """gunicorn on this backend's test database, shared by the module's tests."""
    redis_url = backends.service_redis_url()
    env = {
        "DATABASE_URL": database.url,
        "SEATSVC_API_TOKENS": API_TOKEN,
        "SEATSVC_SECRET_KEY": SECRET_KEY,
        "REDIS_URL": redis_url,
    }
    log_path = tmp_path_factory.mktemp("gunicorn") / f"{database.backend}.log"
    started = start_gunicorn("seatsvc.wsgi:app", env, log_path, workers=3, threads=8)
    yield started
    started.stop()


@dataclass
class Live:
    """The running server, a way to call it, and the database to check it against."""

    server: LiveServer
    engine: Engine
    backend: str

    def call(self, method: str, path: str, body: Any = None) -> Reply:
        return send(self.server.url, API_TOKEN, Call(method, path, body))

    def ok(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        reply = self.call(method, path, body)
        assert reply.status == status, (method, path, reply.status, reply.body)
        return reply.body

    def setup(self, calls: list[Call], status: tuple[int, ...] = (200, 201)) -> list[Reply]:
        replies = in_threads(self.server.url, API_TOKEN, calls)
        bad = [(r.call.path, r.status, r.body) for r in replies if r.status not in status]
        assert not bad, bad[:5]
        return replies

    def burst(self, calls: list[Call]) -> list[Reply]:
        """All at once from several client processes; big bursts must reach several workers."""
        offset = self.server.log_size()
        replies = burst(self.server.url, API_TOKEN, calls, processes=CLIENT_PROCESSES)
        assert len({reply.client_pid for reply in replies}) == CLIENT_PROCESSES
        errors = [
            (r.call.path, r.status, r.body) for r in replies if r.status < 0 or r.status >= 500
        ]
        assert not errors, (errors[:5], self.server.log_tail())
        if len(calls) >= 50:  # smaller bursts may, rarely, all land on one worker
            worker_pids = {pid for pid, *_ in self.server.access_since(offset)}
            assert len(worker_pids) >= 2, f"one server process took the whole burst: {worker_pids}"
        return replies

    def agency(self, *, seats: int, auto_add: bool) -> dict[str, Any]:
        body = {"name": "Clinic", "admin_emails": ["admin@clinic.example"], "trial": False}
        self.ok("PUT", AGENCY_PATH, body, status=201)
        self.ok("POST", f"{AGENCY_PATH}/baa", {})
        self.ok("PUT", f"{AGENCY_PATH}/seats/base", {"quantity": seats})
        if auto_add:
            self.ok("PATCH", f"{AGENCY_PATH}/settings", {"auto_add_seats": True})
        agency: dict[str, Any] = self.ok("GET", AGENCY_PATH)
        return agency

    def join_all(self, member_ids: list[str], source: str = "auto_join") -> None:
        self.setup([member_call(member_id, source) for member_id in member_ids], status=(201,))

    def base_seats(self) -> dict[str, Any]:
        seats: dict[str, Any] = self.ok("GET", AGENCY_PATH)["seats"]["base"]
        return seats

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.engine.connect() as connection:
            return connection.execute(text(sql), params).scalar()

    def rows(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.connect() as connection:
            return list(connection.execute(text(sql), params))

    def holding(self, seat_type: str = "base") -> int:
        return int(
            self.scalar(
                "SELECT count(*) FROM members WHERE agency_id = :a AND seat_type = :t"
                " AND status IN ('invited', 'active')",
                a=AGENCY,
                t=seat_type,
            )
        )

    def desired_version(self) -> int:
        return int(
            self.scalar("SELECT desired_version FROM billing_outbox WHERE agency_id = :a", a=AGENCY)
        )

    def count(self, table: str, where: str, **params: Any) -> int:
        return int(self.scalar(f"SELECT count(*) FROM {table} WHERE {where}", **params))


@pytest.fixture
def live(server: LiveServer, runtime: Runtime, database: backends.TestDatabase) -> Iterator[Live]:
    """The shared server with empty tables (`runtime` empties them after the test)."""
    offset = server.log_size()
    yield Live(server, runtime.db.engine, database.backend)
    assert_no_over_allocation(runtime.db.engine)
    log = server.log_text()[offset:]
    assert "Traceback" not in log, log[-4000:]
    assert server.process.poll() is None, "gunicorn died during the test"


def assert_no_over_allocation(engine: Engine) -> None:
    """Invariant 1, straight from the tables: seat holders <= purchased, per agency and type."""
    with engine.connect() as connection:
        over = list(
            connection.execute(
                text(
                    "SELECT p.agency_id, p.seat_type, p.purchased, count(m.id) AS holding"
                    " FROM seat_pools p LEFT JOIN members m ON m.agency_id = p.agency_id"
                    " AND m.seat_type = p.seat_type AND m.status IN ('invited', 'active')"
                    " GROUP BY p.agency_id, p.seat_type, p.purchased"
                    " HAVING count(m.id) > p.purchased"
                )
            )
        )
        orphans = connection.execute(
            text(
                "SELECT count(*) FROM members m WHERE m.status IN ('invited', 'active') AND NOT"
                " EXISTS (SELECT 1 FROM seat_pools p WHERE p.agency_id = m.agency_id"
                " AND p.seat_type = m.seat_type)"
            )
        ).scalar()
    assert over == [], f"over-allocated (agency, seat type, purchased, holding): {over}"
    assert orphans == 0, "members hold a seat of a type their agency has no pool for"


def member_call(member_id: str, source: str = "auto_join", seat_type: str = "base") -> Call:
    body = {
        "member_id": member_id,
        "email": f"{member_id}@staff.example",
        "seat_type": seat_type,
        "source": source,
    }
    return Call("POST", f"{AGENCY_PATH}/members", body)


def seat_request(member_id: str) -> Call:
    return Call("POST", f"{AGENCY_PATH}/members/{member_id}/seat-request")


def outcomes(replies: list[Reply]) -> Counter[str]:
    assert all(reply.status == 200 for reply in replies), [
        (r.status, r.body) for r in replies if r.status != 200
    ][:5]
    return Counter(reply.body["outcome"] for reply in replies)


def error_codes(replies: list[Reply]) -> Counter[str]:
    return Counter(r.body["error"]["code"] for r in replies if r.status >= 400)


# --- (a) Auto-Add OFF: exactly the free seats are handed out --------------------------------


def test_first_logins_take_exactly_the_free_seats(live: Live) -> None:
    live.agency(seats=10, auto_add=False)
    members = [f"m-{n:03d}" for n in range(100)]
    live.join_all(members)
    version_before = live.desired_version()

    replies = live.burst([seat_request(member_id) for member_id in members])

    assert outcomes(replies) == {"activated": 10, "blocked": 90}
    blocked = {r.body["member"]["id"] for r in replies if r.body["outcome"] == "blocked"}
    assert {r.body["reason"] for r in replies if r.body["outcome"] == "blocked"} == {"no_capacity"}
    assert all(r.body["reason"] is None for r in replies if r.body["outcome"] == "activated")
    seats = live.base_seats()
    assert (seats["used"], seats["purchased"], seats["available"]) == (10, 10, 0)
    assert live.holding() == 10
    assert live.count("members", "agency_id = :a AND status = 'blocked'", a=AGENCY) == 90
    notices = live.rows(
        "SELECT dedupe_key, member_id FROM notifications WHERE kind = 'member_blocked'"
    )
    assert len(notices) == 90
    assert len({key for key, _ in notices}) == 90
    assert {member for _, member in notices} == blocked
    assert live.count("seat_events", "type = 'auto_added'") == 0
    assert live.desired_version() == version_before  # nothing for Stripe to do
    assert_no_over_allocation(live.engine)


# --- (b) Auto-Add ON: every login gets a seat, each added seat exactly once ------------------


def test_auto_add_grows_the_subscription_once_per_login(live: Live) -> None:
    live.agency(seats=10, auto_add=True)
    members = [f"m-{n:03d}" for n in range(100)]
    live.join_all(members)
    version_before = live.desired_version()

    replies = live.burst([seat_request(member_id) for member_id in members])

    assert outcomes(replies) == {"activated": 10, "auto_added": 90}
    assert all(r.body["member"]["status"] == "active" for r in replies)
    seats = live.base_seats()
    assert (seats["used"], seats["purchased"]) == (100, 100)
    assert live.holding() == 100
    outbox = live.rows(
        "SELECT status, desired_version FROM billing_outbox WHERE agency_id = :a", a=AGENCY
    )
    assert [(status, version - version_before) for status, version in outbox] == [("pending", 90)]
    events = live.rows(
        "SELECT delta, purchased_after, member_id FROM seat_events"
        " WHERE agency_id = :a AND type = 'auto_added' ORDER BY id",
        a=AGENCY,
    )
    assert [delta for delta, _, _ in events] == [1] * 90
    # Serialised under the pool lock: the running total steps 11, 12, ..., 100.
    assert [after for _, after, _ in events] == list(range(11, 101))
    auto_added = {r.body["member"]["id"] for r in replies if r.body["outcome"] == "auto_added"}
    assert {member for _, _, member in events} == auto_added
    notices = live.rows("SELECT member_id FROM notifications WHERE kind = 'seat_auto_added'")
    assert sorted(member for (member,) in notices) == sorted(auto_added)
    assert live.count("notifications", "kind = 'member_blocked'") == 0
    assert_no_over_allocation(live.engine)


# --- (c) one member's retried seat-request: one seat, one Stripe increment ------------------


def test_retried_seat_request_takes_one_seat(live: Live) -> None:
    live.agency(seats=1, auto_add=True)
    live.join_all(["holder", "retrier"])
    assert live.ok("POST", f"{AGENCY_PATH}/members/holder/seat-request")["outcome"] == "activated"
    version_before = live.desired_version()

    replies = live.burst([seat_request("retrier")] * 20)

    assert outcomes(replies) == {"auto_added": 1, "already_active": 19}
    seats = live.base_seats()
    assert (seats["used"], seats["purchased"]) == (2, 2)
    assert live.desired_version() == version_before + 1
    assert live.count("seat_events", "type = 'auto_added' AND member_id = 'retrier'") == 1
    assert live.count("notifications", "kind = 'seat_auto_added'") == 1
    assert_no_over_allocation(live.engine)


# --- (d) explicit invites, re-invites and seat moves race for the last seats -----------------


def test_invites_never_hand_out_more_seats_than_bought(live: Live) -> None:
    live.agency(seats=2, auto_add=False)
    live.join_all(["holder-1", "holder-2", *(f"blocked-{n}" for n in range(4))])
    first = live.setup([seat_request(m) for m in ("holder-1", "holder-2")])
    assert outcomes(first) == {"activated": 2}
    late = live.setup([seat_request(f"blocked-{n}") for n in range(4)])
    assert outcomes(late) == {"blocked": 4}
    live.ok("PUT", f"{AGENCY_PATH}/seats/base", {"quantity": 5})  # three seats free

    invites = [member_call(f"new-{n:02d}", "invite") for n in range(20)]
    reinvites = [Call("POST", f"{AGENCY_PATH}/members/blocked-{n}/reinvite") for n in range(4)]
    replies = live.burst(invites + reinvites)

    won = [r for r in replies if r.status in (200, 201)]
    assert len(won) == 3, [(r.call.path, r.status) for r in won]
    assert all(r.body["status"] == "invited" for r in won)
    assert {r.status for r in replies} <= {200, 201, 409}
    assert error_codes(replies) == {"no_capacity": 21}
    assert live.holding() == 5
    seats = live.base_seats()
    assert (seats["used"], seats["purchased"]) == (5, 5)
    # A refused invite leaves nothing behind: no member row, no invite, no email owed.
    assert live.count("members", "id LIKE 'new-%'") == sum(1 for r in won if r.status == 201)
    assert live.count("invites", "revoked_at IS NULL AND used_at IS NULL") == 3
    assert live.count("notifications", "kind = 'invite'") == 3

    # Seat moves race the same way for the voice pool: two voice seats, five movers.
    live.ok("PUT", f"{AGENCY_PATH}/seats/voice", {"quantity": 2})
    holders = ["holder-1", "holder-2", *(r.body["id"] for r in won)]
    moves = live.burst(
        [Call("PUT", f"{AGENCY_PATH}/members/{m}/seat", {"seat_type": "voice"}) for m in holders]
    )
    assert sum(r.status == 200 for r in moves) == 2
    assert error_codes(moves) == {"no_capacity": len(moves) - 2}
    assert live.holding("voice") == 2
    assert live.holding("base") == 3
    assert_no_over_allocation(live.engine)


# --- (e) the same member registered concurrently -----------------------------------------------


def test_concurrent_registrations_make_one_member(live: Live) -> None:
    live.agency(seats=3, auto_add=False)

    joins = live.burst([member_call("twin")] * 20)
    invites = live.burst([member_call("invitee", "invite")] * 20)

    for replies in (joins, invites):
        assert sorted({r.status for r in replies}) in ([200, 201], [201]), [
            (r.status, r.body) for r in replies if r.status not in (200, 201)
        ][:5]
        assert sum(r.status == 201 for r in replies) == 1
    assert {r.body["status"] for r in joins} == {"pending_login"}
    assert {r.body["status"] for r in invites} == {"invited"}
    assert live.count("members", "id = 'twin'") == 1
    assert live.count("members", "id = 'invitee'") == 1
    # The invite took one seat and sent one link, however often it was repeated.
    assert live.holding() == 1
    assert live.count("invites", "member_id = 'invitee'") == 1
    assert live.count("notifications", "kind = 'invite' AND member_id = 'invitee'") == 1

    # The same agency created concurrently: one agency, its pools and one outbox row.
    body = {"name": "Twin clinic", "admin_emails": ["admin@twin.example"], "trial": True}
    created = live.burst([Call("PUT", "/v1/agencies/twin-clinic", body)] * 20)
    assert sorted(r.status for r in created) == [200] * 19 + [201]
    assert live.count("agencies", "id = 'twin-clinic'") == 1
    assert live.count("seat_pools", "agency_id = 'twin-clinic'") == 2
    assert live.count("billing_outbox", "agency_id = 'twin-clinic'") == 1
    trial_seats = live.rows("SELECT type, delta FROM seat_events WHERE agency_id = 'twin-clinic'")
    assert [tuple(row) for row in trial_seats] == [("purchased", 1)]
    assert_no_over_allocation(live.engine)


# --- (f) admins cut seats while clinicians log in ------------------------------------------


def test_reductions_racing_first_logins_never_undercut_the_holders(live: Live) -> None:
    live.agency(seats=20, auto_add=False)
    early = [f"early-{n}" for n in range(5)]
    members = [f"m-{n:02d}" for n in range(30)]
    live.join_all(early + members)
    assert outcomes(live.setup([seat_request(m) for m in early])) == {"activated": 5}

    quantities = [2, 4, 6, 8, 10, 12, 15, 18, 22, 25, 30, 40]
    puts = [Call("PUT", f"{AGENCY_PATH}/seats/base", {"quantity": q}) for q in quantities]
    logins = [seat_request(m) for m in members]
    replies = live.burst([*logins, *puts])

    put_replies = [r for r in replies if r.call.method == "PUT"]
    login_replies = [r for r in replies if r.call.method == "POST"]
    for reply in put_replies:
        quantity = reply.call.body["quantity"]
        if reply.status == 200:
            base = reply.body["seats"]["base"]
            assert base["purchased"] == quantity
            assert base["used"] <= quantity
        else:
            assert reply.status == 409, (reply.status, reply.body)
            assert reply.body["error"]["code"] == "below_used"
            details = reply.body["error"]["details"]
            assert details["requested"] == quantity < details["used"]
    # Five seats were held throughout, so cutting below five can never succeed.
    assert all(r.status == 409 for r in put_replies if r.call.body["quantity"] < 5)
    assert all(r.status == 200 for r in put_replies if r.call.body["quantity"] >= 35)
    got = outcomes(login_replies)
    assert set(got) <= {"activated", "blocked"}
    seats = live.base_seats()
    assert seats["used"] == live.holding() == 5 + got["activated"]
    assert seats["used"] <= seats["purchased"]
    # The ledger replays to the final quantity: each event moves from the previous total.
    events = live.rows(
        "SELECT delta, purchased_after FROM seat_events WHERE agency_id = :a"
        " AND seat_type = 'base' ORDER BY id",
        a=AGENCY,
    )
    total = 0
    for delta, after in events:
        assert total + delta == after
        total = after
    assert total == seats["purchased"]
    assert_no_over_allocation(live.engine)


# --- (g) one accept link clicked many times, racing a removal -----------------------------


def test_accept_link_clicked_concurrently_activates_once(live: Live) -> None:
    live.agency(seats=2, auto_add=False)
    live.setup([member_call("clicker", "invite"), member_call("leaver", "invite")])
    tokens = {
        member: invite_token(SECRET_KEY, invite_id)
        for invite_id, member in live.rows("SELECT id, member_id FROM invites")
    }
    accept = [Call("POST", "/v1/invites/accept", {"token": tokens["clicker"]})] * 10
    accept_leaver = [Call("POST", "/v1/invites/accept", {"token": tokens["leaver"]})] * 10
    removal = Call("DELETE", f"{AGENCY_PATH}/members/leaver")

    replies = live.burst([*accept, *accept_leaver, removal])

    clicker = replies[:10]
    assert sorted(r.status for r in clicker) == [200] + [410] * 9
    assert error_codes(clicker) == {"invite_expired": 9}
    leaver = replies[10:20]
    assert {r.status for r in leaver} <= {200, 410}
    assert sum(r.status == 200 for r in leaver) <= 1
    assert replies[20].status == 200
    assert live.ok("GET", f"{AGENCY_PATH}/members/clicker")["status"] == "active"
    assert live.ok("GET", f"{AGENCY_PATH}/members/leaver")["status"] == "removed"
    assert live.count("invites", "used_at IS NOT NULL AND member_id = 'clicker'") == 1
    assert live.holding() == 1
    assert_no_over_allocation(live.engine)


# --- (h) everything at once: the invariants hold whatever the interleaving ----------------


def test_mixed_seat_traffic_keeps_the_ledger_and_outbox_exact(live: Live) -> None:
    live.agency(seats=8, auto_add=True)
    live.ok("PUT", f"{AGENCY_PATH}/seats/voice", {"quantity": 3})
    settled = [f"settled-{n}" for n in range(8)]
    live.join_all(settled)
    assert outcomes(live.setup([seat_request(m) for m in settled])) == {"activated": 8}
    version_before = live.desired_version()
    events_before = live.count("seat_events", "agency_id = :a", a=AGENCY)
    seat_outcomes: Counter[str] = Counter()

    for round_ in range(2):
        base = [f"r{round_}-b{n:02d}" for n in range(24)]
        voice = [f"r{round_}-v{n}" for n in range(8)]
        live.setup(
            [member_call(m) for m in base] + [member_call(m, seat_type="voice") for m in voice]
        )
        calls = [seat_request(m) for m in [*base, *voice]]
        calls += [
            member_call(f"r{round_}-inv{n}", "invite", ("base", "voice")[n % 2]) for n in range(6)
        ]
        calls += [
            Call("PUT", f"{AGENCY_PATH}/seats/{seat_type}", {"quantity": quantity})
            for seat_type, quantity in [
                ("base", 4),
                ("base", 12),
                ("base", 20),
                ("voice", 1),
                ("voice", 6),
            ]
        ]
        calls += [
            Call("PATCH", f"{AGENCY_PATH}/settings", body)
            for body in ({"auto_add_seats": False}, {"auto_add_seats": True}, {"auto_add_cap": 40},
                         {"auto_add_cap": None})
        ]  # fmt: skip
        leaving, moving = (
            settled[round_ * 2 : round_ * 2 + 1],
            settled[round_ * 2 + 1 : round_ * 2 + 2],
        )
        calls += [Call("DELETE", f"{AGENCY_PATH}/members/{m}") for m in leaving]
        calls += [
            Call("PUT", f"{AGENCY_PATH}/members/{m}/seat", {"seat_type": "voice"}) for m in moving
        ]

        replies = live.burst(calls)

        assert {r.status for r in replies} <= {200, 201, 409}, Counter(r.status for r in replies)
        assert set(error_codes(replies)) <= {"no_capacity", "below_used"}
        seat_outcomes += outcomes([r for r in replies if r.call.path.endswith("/seat-request")])
        assert_no_over_allocation(live.engine)

    assert set(seat_outcomes) <= {"activated", "auto_added", "blocked"}
    assert sum(seat_outcomes.values()) == 64
    # Every seat-count change is one ledger event and one outbox version, nothing lost.
    events = live.rows(
        "SELECT seat_type, delta, purchased_after, type FROM seat_events"
        " WHERE agency_id = :a ORDER BY id",
        a=AGENCY,
    )
    assert live.desired_version() - version_before == len(events) - events_before
    assert sum(1 for *_, kind in events if kind == "auto_added") == seat_outcomes["auto_added"]
    agency = live.ok("GET", AGENCY_PATH)
    for seat_type in ("base", "voice"):
        total = 0
        for event_seat_type, delta, after, _ in events:
            if event_seat_type == seat_type:
                assert total + delta == after
                total = after
        assert total == agency["seats"][seat_type]["purchased"]
        assert agency["seats"][seat_type]["used"] == live.holding(seat_type)
    assert live.count("notifications", "kind = 'seat_auto_added'") == seat_outcomes["auto_added"]
    assert live.count("notifications", "kind = 'member_blocked'") == seat_outcomes["blocked"]


# --- BAA: of concurrent signatures the first wins, and every caller is told which --------


def test_concurrent_baa_signatures_all_answer_the_one_recorded(live: Live) -> None:
    """Without a row lock both signers read "unsigned" and each was told its own date."""
    postgres_only(live.backend)
    agencies = [f"baa-{n}" for n in range(6)]
    live.setup(
        [
            Call("PUT", f"/v1/agencies/{agency}", {"name": "C", "admin_emails": ["a@c.example"]})
            for agency in agencies
        ],
        status=(201,),
    )
    now = datetime.now(UTC).replace(microsecond=0)
    calls = [
        Call(
            "POST",
            f"/v1/agencies/{agency}/baa",
            {"signed_at": (now - timedelta(hours=n)).isoformat()},
        )
        for agency in agencies
        for n in range(8)
    ]
    replies = live.burst(calls)
    assert all(r.status == 200 for r in replies), [r.body for r in replies if r.status != 200]
    for agency in agencies:
        answered = {r.body["baa_signed_at"] for r in replies if r.call.path.split("/")[3] == agency}
        recorded = live.ok("GET", f"/v1/agencies/{agency}")["baa_signed_at"]
        assert answered == {recorded}, (agency, answered, recorded)


# --- the body limit holds on a real server, also for a chunked body ----------------------


def chunked_post(url: str, path: str, chunks: int) -> int:
    """POST a chunked body (no Content-Length) of `chunks` x 64 KiB; the status answered.

    The server may answer 413 and stop reading before the body ends: sending then
    fails, and the answer is read all the same.
    """
    parsed = urlsplit(url)
    with socket.create_connection((parsed.hostname, parsed.port), timeout=30) as conn:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {parsed.netloc}\r\n"
            f"Authorization: Bearer {API_TOKEN}\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        chunk = b"%x\r\n%s\r\n" % (64 * 1024, b" " * 64 * 1024)
        try:
            conn.sendall(head.encode())
            for _ in range(chunks):
                conn.sendall(chunk)
            conn.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server answered early and closed its side
        status_line = conn.makefile("rb").readline()
    return int(status_line.split()[1])


def test_a_chunked_body_over_the_limit_changes_nothing(live: Live) -> None:
    live.agency(seats=1, auto_add=False)
    live.join_all(["m-1"])
    seat_request_path = f"{AGENCY_PATH}/members/m-1/seat-request"
    assert chunked_post(live.server.url, seat_request_path, chunks=160) == 413  # 10 MiB
    assert live.ok("GET", f"{AGENCY_PATH}/members/m-1")["status"] == "pending_login"
    assert chunked_post(live.server.url, seat_request_path, chunks=0) == 200
