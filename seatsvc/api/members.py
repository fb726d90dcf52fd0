"""Member and invite endpoints of API.md."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from seatsvc import metrics, schemas
from seatsvc.api.context import invite_policy, transaction
from seatsvc.api.routing import route
from seatsvc.models import Member
from seatsvc.services import members

bp = Blueprint("members", __name__, url_prefix="/v1")
MEMBERS = "/agencies/<id:agency_id>/members"
MEMBER = MEMBERS + "/<id:member_id>"


@route(
    bp,
    MEMBERS,
    "POST",
    "Register an auto-joined member or invite one",
    body=schemas.MemberCreateSchema,
    response=schemas.MemberSchema,
    status=201,
    errors=(400, 401, 404, 409, 413, 422),
    also=(200,),
)
def create_member(agency_id: str, data: dict[str, Any]) -> tuple[Member, int]:
    policy = invite_policy()
    result = transaction(lambda s: members.register_member(s, agency_id, data, policy))
    return result.member, 201 if result.created else 200


@route(
    bp,
    MEMBERS,
    "GET",
    "List members, optionally by status, a page at a time (oldest first)",
    query=schemas.MembersQuerySchema,
    response=schemas.MemberListSchema,
    errors=(401, 404, 422),
)
def list_members(agency_id: str, params: dict[str, Any]) -> dict[str, Any]:
    found, cursor = transaction(
        lambda s: members.list_members(
            s, agency_id, params.get("status"), params["limit"], params["before"]
        )
    )
    return {"members": found, "next": cursor}


@route(bp, MEMBER, "GET", "Get a member", response=schemas.MemberSchema, errors=(401, 404))
def get_member(agency_id: str, member_id: str) -> Member:
    return transaction(lambda s: members.get_member(s, agency_id, member_id))


@route(
    bp,
    MEMBER + "/seat-request",
    "POST",
    "First verified login: take, add or block a seat",
    response=schemas.SeatRequestResultSchema,
    errors=(401, 404, 409),
)
def seat_request(agency_id: str, member_id: str) -> members.SeatRequestResult:
    result = transaction(lambda s: members.request_seat(s, agency_id, member_id))
    metrics.count_seat_request(result.outcome, result.reason, result.member.seat_type)
    return result


@route(
    bp,
    MEMBER + "/reinvite",
    "POST",
    "Re-invite a blocked (or expired invited) member",
    response=schemas.MemberSchema,
    errors=(401, 404, 409),
)
def reinvite(agency_id: str, member_id: str) -> Member:
    policy = invite_policy()
    return transaction(lambda s: members.reinvite(s, agency_id, member_id, policy))


@route(
    bp,
    MEMBER + "/seat",
    "PUT",
    "Move a member to another seat type",
    body=schemas.SeatMoveSchema,
    response=schemas.MemberSchema,
    errors=(400, 401, 404, 409, 422),
)
def move_seat(agency_id: str, member_id: str, data: dict[str, Any]) -> Member:
    return transaction(
        lambda s: members.change_seat_type(s, agency_id, member_id, data["seat_type"])
    )


@route(
    bp,
    MEMBER,
    "DELETE",
    "Remove a member: frees the seat, keeps the purchased count",
    response=schemas.MemberSchema,
    errors=(401, 404),
)
def remove_member(agency_id: str, member_id: str) -> Member:
    return transaction(lambda s: members.remove_member(s, agency_id, member_id))


@route(
    bp,
    "/invites/accept",
    "POST",
    "Accept an invite with its one-click token",
    body=schemas.AcceptInviteSchema,
    response=schemas.MemberSchema,
    errors=(400, 401, 404, 410, 422),
)
def accept_invite(data: dict[str, Any]) -> Member:
    return transaction(lambda s: members.accept_invite(s, data["token"]))
