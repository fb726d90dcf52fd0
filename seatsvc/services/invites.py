"""Single-use, expiring accept links.

The token is `<invite id>.<HMAC(secret, invite id)>`; only its SHA-256 is
stored, so a database dump cannot accept anyone's invite, while the notifier
(which holds the secret) can rebuild the link from the invite id alone and no
plaintext token ever sits in a table or a job argument.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from seatsvc.db import for_update
from seatsvc.errors import InviteExpired, NotFound
from seatsvc.models import Invite, Member, utcnow
from seatsvc.types import MemberStatus


def invite_token(secret_key: str, invite_id: str) -> str:
    mac = hmac.new(secret_key.encode(), f"invite:{invite_id}".encode(), hashlib.sha256)
    return f"{invite_id}.{mac.hexdigest()}"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_invite(session: Session, member: Member, secret_key: str, ttl: timedelta) -> Invite:
    """A fresh link; any older link of the member stops working."""
    revoke_invites(session, member.id)
    invite_id = secrets.token_hex(16)
    now = utcnow()
    invite = Invite(
        id=invite_id,
        member_id=member.id,
        token_hash=hash_token(invite_token(secret_key, invite_id)),
        created_at=now,
        expires_at=now + ttl,
    )
    session.add(invite)
    return invite


def revoke_invites(session: Session, member_id: str) -> None:
    session.execute(
        update(Invite)
        .where(Invite.member_id == member_id, Invite.used_at.is_(None), Invite.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def find_invite(session: Session, token: str) -> Invite:
    invite = session.scalar(select(Invite).where(Invite.token_hash == hash_token(token)))
    if invite is None:
        raise NotFound("unknown invite token")
    return invite


def lock_invite(session: Session, invite_id: str) -> Invite:
    return session.execute(for_update(select(Invite).where(Invite.id == invite_id))).scalar_one()


def check_usable(invite: Invite, member: Member, now: datetime) -> None:
    if invite.used_at is not None or invite.revoked_at is not None:
        raise InviteExpired("this invite link was already used or replaced")
    if invite.expires_at <= now:
        raise InviteExpired("this invite link has expired: ask an admin to re-invite you")
    if member.status != MemberStatus.INVITED:
        raise InviteExpired("this invite is no longer valid")
