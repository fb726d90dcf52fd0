"""Agency endpoints of API.md."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from seatsvc import schemas
from seatsvc.api.context import actor, transaction
from seatsvc.api.routing import route
from seatsvc.services import agencies

bp = Blueprint("agencies", __name__, url_prefix="/v1/agencies")
AGENCY = "/<id:agency_id>"


@route(
    bp,
    AGENCY,
    "PUT",
    "Create or update an agency",
    body=schemas.AgencyUpsertSchema,
    response=schemas.AgencySchema,
    errors=(400, 401, 409, 413, 422),
    also=(201,),
)
def put_agency(agency_id: str, data: dict[str, Any]) -> tuple[agencies.AgencyView, int]:
    view = transaction(lambda s: agencies.upsert_agency(s, agency_id, data))
    return view, 201 if view.created else 200


@route(
    bp,
    AGENCY,
    "GET",
    "Get an agency with its seat summary",
    response=schemas.AgencySchema,
    errors=(401, 404),
)
def get_agency(agency_id: str) -> agencies.AgencyView:
    return transaction(lambda s: agencies.load_agency_view(s, agency_id))


@route(
    bp,
    AGENCY + "/baa",
    "POST",
    "Record the signed BAA",
    body=schemas.BaaSchema,
    response=schemas.AgencySchema,
    errors=(400, 401, 404, 422),
)
def sign_baa(agency_id: str, data: dict[str, Any]) -> agencies.AgencyView:
    return transaction(lambda s: agencies.sign_baa(s, agency_id, data.get("signed_at")))


@route(
    bp,
    AGENCY + "/settings",
    "PATCH",
    "Auto-Add Seats and its cap",
    body=schemas.SettingsSchema,
    response=schemas.AgencySchema,
    errors=(400, 401, 404, 409, 422),
)
def patch_settings(agency_id: str, data: dict[str, Any]) -> agencies.AgencyView:
    return transaction(lambda s: agencies.update_settings(s, agency_id, data))


@route(
    bp,
    AGENCY + "/seats/<seat_type:seat_type>",
    "PUT",
    "Buy or reduce seats",
    body=schemas.SeatQuantitySchema,
    response=schemas.AgencySchema,
    errors=(400, 401, 404, 409, 422),
)
def put_seats(agency_id: str, seat_type: str, data: dict[str, Any]) -> agencies.AgencyView:
    who = actor()
    return transaction(
        lambda s: agencies.set_seat_quantity(s, agency_id, seat_type, data["quantity"], who)
    )


@route(
    bp,
    AGENCY + "/trial",
    "PUT",
    "Raise the trial's seat allowance (ops)",
    body=schemas.TrialSchema,
    response=schemas.AgencySchema,
    errors=(400, 401, 404, 422),
)
def put_trial(agency_id: str, data: dict[str, Any]) -> agencies.AgencyView:
    return transaction(lambda s: agencies.set_trial_seat_limit(s, agency_id, data["seat_limit"]))


@route(
    bp,
    AGENCY + "/seat-events",
    "GET",
    "The seat ledger, newest first",
    query=schemas.SeatEventsQuerySchema,
    response=schemas.SeatEventsPageSchema,
    errors=(401, 404, 422),
)
def seat_events(agency_id: str, params: dict[str, Any]) -> dict[str, Any]:
    events, cursor = transaction(
        lambda s: agencies.list_seat_events(s, agency_id, params["limit"], params["before"])
    )
    return {"events": events, "next": None if cursor is None else str(cursor)}


@route(
    bp,
    AGENCY + "/reconcile",
    "POST",
    "Compare with Stripe now (enqueued)",
    response=schemas.ReconcileRequestedSchema,
    status=202,
    errors=(401, 404),
)
def reconcile(agency_id: str) -> Any:
    return transaction(lambda s: agencies.request_reconcile(s, agency_id))
