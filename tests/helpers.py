"""Test helpers: a thin API client and a database snapshot for "changes nothing" checks."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import MetaData, select
from werkzeug.test import TestResponse

from seatsvc.db import make_engine


class Api:
    """Calls the v1 API as the main product would: bearer token, JSON bodies."""

    def __init__(self, client: FlaskClient, token: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}

    def call(self, method: str, path: str, body: Any = None, **kwargs: Any) -> TestResponse:
        if body is not None:
            kwargs["json"] = body
        return self.client.open(path, method=method, headers=self.headers, **kwargs)

    def ok(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        response = self.call(method, path, body)
        assert response.status_code == status, (response.status_code, response.get_json())
        return response.get_json()

    # --- the calls most tests make -------------------------------------------
    def agency(
        self,
        agency_id: str = "clinic",
        *,
        seats: int | None = None,
        voice: int = 0,
        auto_add: bool = False,
        baa: bool = True,
        trial: bool = False,
    ) -> Any:
        self.ok(
            "PUT",
            f"/v1/agencies/{agency_id}",
            {"name": "Clinic", "admin_emails": ["admin@clinic.example"], "trial": trial},
            status=201,
        )
        if baa:
            self.ok("POST", f"/v1/agencies/{agency_id}/baa", {})
        if seats is not None:
            self.ok("PUT", f"/v1/agencies/{agency_id}/seats/base", {"quantity": seats})
        if voice:
            self.ok("PUT", f"/v1/agencies/{agency_id}/seats/voice", {"quantity": voice})
        if auto_add:
            self.ok("PATCH", f"/v1/agencies/{agency_id}/settings", {"auto_add_seats": True})
        return self.ok("GET", f"/v1/agencies/{agency_id}")

    def join(self, member_id: str, agency_id: str = "clinic", seat_type: str = "base") -> Any:
        return self.ok(
            "POST",
            f"/v1/agencies/{agency_id}/members",
            {
                "member_id": member_id,
                "email": f"{member_id}@staff.example",
                "seat_type": seat_type,
                "source": "auto_join",
            },
            status=201,
        )

    def invite(self, member_id: str, agency_id: str = "clinic", seat_type: str = "base") -> Any:
        return self.call(
            "POST",
            f"/v1/agencies/{agency_id}/members",
            {
                "member_id": member_id,
                "email": f"{member_id}@staff.example",
                "seat_type": seat_type,
                "source": "invite",
            },
        )

    def seat_request(self, member_id: str, agency_id: str = "clinic") -> Any:
        return self.ok("POST", f"/v1/agencies/{agency_id}/members/{member_id}/seat-request")

    def seats(self, agency_id: str = "clinic", seat_type: str = "base") -> Any:
        return self.ok("GET", f"/v1/agencies/{agency_id}")["seats"][seat_type]


def snapshot(database_url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, to prove a failed request changed nothing."""
    engine = make_engine(database_url)
    try:
        metadata = MetaData()
        metadata.reflect(engine)
        with engine.connect() as connection:
            return {
                name: sorted(tuple(map(str, row)) for row in connection.execute(select(table)))
                for name, table in metadata.tables.items()
                if name != "alembic_version"
            }
    finally:
        engine.dispose()
