"""Stripe's wire format: bracket-notation form bodies in, JSON out, Stripe-style ids."""

from __future__ import annotations

import json
import secrets
import string
from typing import Any
from urllib.parse import parse_qsl

JSONDict = dict[str, Any]

_ID_ALPHABET = string.ascii_letters + string.digits
# Keys whose children are free-form (user keys), never turned into lists.
_FREE_FORM_KEYS = frozenset({"metadata"})


def new_id(prefix: str, length: int = 24) -> str:
    """An id shaped like Stripe's (`sub_1Pgc6rB7WZ01zgkWNy0Cn5nw`)."""
    return prefix + "_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


def split_key(key: str) -> list[str]:
    """`items[0][price]` -> ["items", "0", "price"]; `expand[]` -> ["expand", ""]."""
    head, sep, rest = key.partition("[")
    parts = [head]
    if not sep:
        return parts
    rest = "[" + rest
    while rest.startswith("["):
        end = rest.find("]")
        if end < 0:
            break
        parts.append(rest[1:end])
        rest = rest[end + 1 :]
    return parts


def _insert(target: JSONDict, parts: list[str], value: str) -> None:
    node: Any = target
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            # `expand[]=a&expand[]=b`: empty brackets append.
            if last:
                node.append(value)
                return
            child: Any = [] if parts[i + 1] == "" else {}
            node.append(child)
            node = child
            continue
        if last:
            node[part] = value
            return
        nxt = parts[i + 1]
        if part not in node or not isinstance(node[part], (dict, list)):
            node[part] = [] if nxt == "" else {}
        node = node[part]


def _listify(value: Any, parent_key: str = "") -> Any:
    """Dicts keyed "0", "1", ... become lists (Stripe's indexed array notation)."""
    if isinstance(value, list):
        return [_listify(v) for v in value]
    if not isinstance(value, dict):
        return value
    if parent_key in _FREE_FORM_KEYS:
        return {k: _listify(v) for k, v in value.items()}
    converted = {k: _listify(v, k) for k, v in value.items()}
    if converted and all(k.isdigit() for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted


def parse_form(raw: str) -> JSONDict:
    """Decode an `application/x-www-form-urlencoded` body or query string."""
    result: JSONDict = {}
    for key, value in parse_qsl(raw, keep_blank_values=True):
        _insert(result, split_key(key), value)
    listified: JSONDict = _listify(result)
    return listified


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=False)


def public(obj: Any) -> Any:
    """Copy of a stored object without emulator-private keys (those starting with `_`)."""
    if isinstance(obj, dict):
        return {k: public(v) for k, v in obj.items() if not k.startswith("_")}
    if isinstance(obj, list):
        return [public(v) for v in obj]
    return obj


def as_int(value: Any, default: int | None = None) -> int | None:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    return int(str(value))


def as_bool(value: Any, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    return str(value).lower() == "true"


def as_list(value: Any) -> list[Any]:
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        return list(value.values())
    return [value]
