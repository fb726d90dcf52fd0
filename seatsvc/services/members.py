"""Members: auto-join, invite, first-login seat request, re-invite, seat move, removal.

Every transition into a seat-holding status (`invited`, `active`) happens
while the agency's seat pools are locked, so members holding a seat can never
outnumber purchased seats, however many requests race.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from seatsvc.db import for_update
from seatsvc.errors import InvalidState, NotFound, ValidationFailed
from seatsvc.models import Agency, Member, SeatPool, utcnow
from seatsvc.seat_rules import SeatDecision, check_seat_assignment, decide_seat_request
from seatsvc.services import invites, outbox
from seatsvc.services.agencies import get_agency, record_seat_event
from seatsvc.services.pools import locked_pool_state
from seatsvc.types import (
    BlockReason,
    MemberSource,
    MemberStatus,
    NotificationKind,
    SeatEventType,
    SeatOutcome,
)


@dataclass(frozen=True)
class InvitePolicy:
    secret_key: str
    ttl: timedelta


@dataclass(frozen=True)
class MemberResult:
    member: Member
    created: bool = False


@dataclass(frozen=True)
class SeatRequestResult:
    member: Member
    outcome: SeatOutcome
    reason: BlockReason | None


def get_member(session: Session, agency_id: str, member_id: str, lock: bool = False) -> Member:
    query = select(Member).where(Member.id == member_id, Member.agency_id == agency_id)
    if lock:
        query = for_update(query)
    member = session.scalar(query)
    if member is None:
        raise NotFound(f"member {member_id!r} not found in agency {agency_id!r}")
    return member


def list_members(
    session: Session, agency_id: str, status: str | None, limit: int, after: str | None
) -> tuple[list[Member], str | None]:
    """Oldest first, a page at a time; the cursor is the id of the last member returned.

    Keyset pagination on (created_at, id): a member added meanwhile never shifts a
    page. A cursor that names no member of this agency is a 422.
    """
    get_agency(session, agency_id)
    query = select(Member).where(Member.agency_id == agency_id)
    if status is not None:
        query = query.where(Member.status == status)
    if after is not None:
        anchor = session.get(Member, after)
        if anchor is None or anchor.agency_id != agency_id:
            raise ValidationFailed("unknown cursor", {"before": ["not a cursor of this list"]})
        query = query.where(
            or_(
                Member.created_at > anchor.created_at,
                and_(Member.created_at == anchor.created_at, Member.id > anchor.id),
            )
        )
    rows = list(session.scalars(query.order_by(Member.created_at, Member.id).limit(limit + 1)))
    next_cursor = rows[limit - 1].id if len(rows) > limit else None
    return rows[:limit], next_cursor


def register_member(
    session: Session, agency_id: str, data: dict[str, Any], policy: InvitePolicy
) -> MemberResult:
    """POST members: idempotent on member_id; an invite holds a seat or is refused."""
    agency = get_agency(session, agency_id)
    source = MemberSource(data["source"])
    existing = session.scalar(for_update(select(Member).where(Member.id == data["member_id"])))
    if existing is None:
        member = Member(
            id=data["member_id"],
            agency_id=agency_id,
            email=data["email"],
            seat_type=data["seat_type"],
            source=source,
            status=MemberStatus.PENDING_LOGIN,
        )
        session.add(member)
        session.flush()
        if source == MemberSource.INVITE:
            _invite(session, agency, member, policy, reinvite=False)
        return MemberResult(member, created=True)
    if existing.agency_id != agency_id or existing.email.casefold() != data["email"].casefold():
        raise InvalidState(
            "this member_id already belongs to another agency or email",
            {"member_id": existing.id},
        )
    _rejoin(session, agency, existing, source, data["seat_type"], policy)
    return MemberResult(existing)


def _rejoin(
    session: Session,
    agency: Agency,
    member: Member,
    source: MemberSource,
    seat_type: str,
    policy: InvitePolicy,
) -> None:
    """A repeated POST: the same answer, unless it asks for more than the member has."""
    if member.status == MemberStatus.REMOVED:
        member.seat_type = seat_type
        member.source = source
        if source == MemberSource.AUTO_JOIN:
            _set_status(member, MemberStatus.PENDING_LOGIN)
            return
    if source == MemberSource.INVITE and member.status in (
        MemberStatus.PENDING_LOGIN,
        MemberStatus.BLOCKED,
        MemberStatus.REMOVED,
    ):
        # An explicit invite of someone not holding a seat: the admin's unblock path.
        _invite(session, agency, member, policy, reinvite=True)


def _invite(
    session: Session, agency: Agency, member: Member, policy: InvitePolicy, reinvite: bool
) -> None:
    if member.status not in (MemberStatus.INVITED, MemberStatus.ACTIVE):
        _pools, state = locked_pool_state(session, agency, member.seat_type)
        check_seat_assignment(state, "an invite")
        _set_status(member, MemberStatus.INVITED)
        member.blocked_reason = None
    session.flush()
    invite = invites.issue_invite(session, member, policy.secret_key, policy.ttl)
    outbox.notify(
        session,
        NotificationKind.INVITE,
        f"invite:{invite.id}",
        agency.id,
        member.id,
        {
            "invite_id": invite.id,
            "expires_at": invite.expires_at.isoformat(),
            "reinvite": reinvite,
            "seat_type": member.seat_type,
        },
    )


def request_seat(session: Session, agency_id: str, member_id: str) -> SeatRequestResult:
    """The member's first verified login. Answers from the database alone."""
    member = get_member(session, agency_id, member_id, lock=True)
    agency = get_agency(session, agency_id)
    status = MemberStatus(member.status)
    reason = BlockReason(member.blocked_reason) if member.blocked_reason else None
    if status != MemberStatus.PENDING_LOGIN:
        decision = decide_seat_request(status, None, reason)
        if status == MemberStatus.INVITED:
            invites.revoke_invites(session, member.id)  # logged in: the link is moot
            _activate(member)
        return SeatRequestResult(member, decision.outcome, decision.reason)

    pools, state = locked_pool_state(session, agency, member.seat_type)
    decision = decide_seat_request(status, state)
    _apply_first_login(session, agency, member, pools[member.seat_type], decision)
    return SeatRequestResult(member, decision.outcome, decision.reason)


def _apply_first_login(
    session: Session, agency: Agency, member: Member, pool: SeatPool, decision: SeatDecision
) -> None:
    if decision.outcome == SeatOutcome.BLOCKED:
        _set_status(member, MemberStatus.BLOCKED)
        member.blocked_reason = decision.reason
        outbox.notify(
            session,
            NotificationKind.MEMBER_BLOCKED,
            f"blocked:{member.id}:v{member.version}",
            agency.id,
            member.id,
            {"reason": decision.reason, "seat_type": member.seat_type, "purchased": pool.purchased},
        )
        return
    if decision.outcome == SeatOutcome.AUTO_ADDED:
        pool.purchased += decision.seats_added
        record_seat_event(
            session,
            agency.id,
            SeatEventType.AUTO_ADDED,
            member.seat_type,
            decision.seats_added,
            pool.purchased,
            actor="auto_add",
            member_id=member.id,
        )
        outbox.request_billing_sync(session, agency.id)
    _activate(member)
    if decision.outcome == SeatOutcome.AUTO_ADDED:
        outbox.notify(
            session,
            NotificationKind.SEAT_AUTO_ADDED,
            f"auto_added:{member.id}:v{member.version}",
            agency.id,
            member.id,
            {
                "seat_type": member.seat_type,
                "seats_added": decision.seats_added,
                "purchased_after": pool.purchased,
            },
        )


def reinvite(session: Session, agency_id: str, member_id: str, policy: InvitePolicy) -> Member:
    member = get_member(session, agency_id, member_id, lock=True)
    if member.status not in (MemberStatus.BLOCKED, MemberStatus.INVITED):
        raise InvalidState(
            f"only blocked or invited members can be re-invited (this one is {member.status})",
            {"status": member.status},
        )
    _invite(session, get_agency(session, agency_id), member, policy, reinvite=True)
    return member


def accept_invite(session: Session, token: str) -> Member:
    found = invites.find_invite(session, token)
    query = select(Member).where(Member.id == found.member_id)
    member = session.execute(for_update(query)).scalar_one()
    invite = invites.lock_invite(session, found.id)
    now = utcnow()
    invites.check_usable(invite, member, now)
    invite.used_at = now
    _activate(member)
    return member


def change_seat_type(session: Session, agency_id: str, member_id: str, seat_type: str) -> Member:
    member = get_member(session, agency_id, member_id, lock=True)
    if member.status not in (MemberStatus.INVITED, MemberStatus.ACTIVE):
        raise InvalidState(
            f"only invited or active members hold a seat to move (this one is {member.status})",
            {"status": member.status},
        )
    if member.seat_type == seat_type:
        return member
    agency = get_agency(session, agency_id)
    _pools, target = locked_pool_state(session, agency, seat_type)
    check_seat_assignment(target, "moving a member to another seat type")
    member.seat_type = seat_type
    member.version += 1
    return member


def remove_member(session: Session, agency_id: str, member_id: str) -> Member:
    """Frees the seat; the purchased count (and so Stripe) is unchanged."""
    member = get_member(session, agency_id, member_id, lock=True)
    if member.status != MemberStatus.REMOVED:
        invites.revoke_invites(session, member.id)
        _set_status(member, MemberStatus.REMOVED)
        member.removed_at = utcnow()
    return member


def _activate(member: Member) -> None:
    _set_status(member, MemberStatus.ACTIVE)
    member.activated_at = utcnow()
    member.blocked_reason = None


def _set_status(member: Member, status: MemberStatus) -> None:
    member.status = status
    member.version = (member.version or 1) + 1
