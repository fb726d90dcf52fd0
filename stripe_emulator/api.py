"""The route table shared by the Stripe API modules."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stripe_emulator.context import Ctx
from stripe_emulator.render import render, render_list
from stripe_emulator.store import Store, expand_paths, paginate
from stripe_emulator.wire import JSONDict

Handler = Callable[..., JSONDict]
LockKey = Callable[[Store, dict[str, Any], dict[str, str]], "str | None"]


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # werkzeug rule, e.g. "/v1/subscriptions/<sub_id>"
    handler: Handler
    params: str | None  # name of the stripe.params TypedDict for validation
    lock: LockKey | None = None  # which object's write lock the call takes


def out(ctx: Ctx, obj: JSONDict, params: dict[str, Any]) -> JSONDict:
    return render(ctx.store, obj, expand_paths(params))


def out_list(ctx: Ctx, items: list[JSONDict], params: dict[str, Any], url: str) -> JSONDict:
    return render_list(ctx.store, paginate(items, params, url), expand_paths(params))
