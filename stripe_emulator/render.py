"""Turn stored objects into the JSON Stripe returns, including `expand[]`."""

from __future__ import annotations

from typing import Any

from stripe_emulator import errors
from stripe_emulator.shapes import plan_of
from stripe_emulator.store import PREFIX_TO_KIND, Store
from stripe_emulator.wire import JSONDict, public


def render_item(store: Store, item: JSONDict, sub: JSONDict | None = None) -> JSONDict:
    out: JSONDict = public(item)
    price = store.find(item["price"], "price")
    if price is not None:
        out["price"] = public(price)
        out["plan"] = plan_of(out["price"])
    if sub is None:
        sub = store.find(item["subscription"], "subscription")
    if sub is not None:
        out["current_period_start"] = sub["_period_start"]
        out["current_period_end"] = sub["_period_end"]
    return out


def render(store: Store, obj: JSONDict, expand: list[str] | None = None) -> JSONDict:
    """A deep copy of `obj` as Stripe shows it, with the requested expansions."""
    with store.mutex:
        out: JSONDict = public(obj)  # public() copies every dict and list
        kind = obj.get("object")
        if kind == "subscription":
            items = [store.objects[i] for i in obj["_item_ids"] if i in store.objects]
            out["items"] = {
                "object": "list",
                "data": [render_item(store, i, obj) for i in items],
                "has_more": False,
                "url": f"/v1/subscription_items?subscription={obj['id']}",
            }
        elif kind == "subscription_item":
            out = render_item(store, obj)
        for path in expand or []:
            out = _expand(store, out, path.split("."), path)
        return out


def _lookup(store: Store, value: str) -> JSONDict | None:
    kind = PREFIX_TO_KIND.get(value.split("_", 1)[0])
    return store.find(value, kind) if kind else None


def _cannot_expand(path: str, hint: str = "") -> errors.StripeError:
    return errors.invalid_request(f"This property cannot be expanded ({path}).{hint}", "expand")


def _expand(store: Store, node: Any, parts: list[str], path: str) -> Any:
    if not parts or node is None:
        return node
    key, rest = parts[0], parts[1:]
    if isinstance(node, list):
        return [_expand(store, n, parts, path) for n in node]
    if not isinstance(node, dict) or key not in node:
        raise _cannot_expand(path)
    value = node[key]
    if isinstance(value, str):
        if value.split("_", 1)[0] not in PREFIX_TO_KIND:
            raise _cannot_expand(path)
        found = _lookup(store, value)
        if found is not None:  # a deleted object stays an id
            value = render(store, found)
    elif value is not None and not isinstance(value, (dict, list)):
        raise _cannot_expand(path)
    node[key] = _expand(store, value, rest, path)
    return node


def render_list(store: Store, page: JSONDict, expand: list[str] | None = None) -> JSONDict:
    """Render a paginated list; `expand[]=data.x` expands inside each element."""
    for path in expand or []:
        if not path.startswith("data."):
            hint = f" You may want to try expanding 'data.{path}' instead."
            raise _cannot_expand(path, hint)
    inner = [p[len("data.") :] for p in expand or []]
    page = dict(page)
    page["data"] = [render(store, o, inner) for o in page["data"]]
    return page
