"""Request parameters checked against the official SDK's own parameter TypedDicts.

`stripe.params.SubscriptionUpdateParams` and friends list every key Stripe accepts and the
Literal values of enums; an unknown key or an out-of-range enum value is rejected the way
Stripe rejects it (400 `parameter_unknown` / `parameter_invalid_string`).
"""

from __future__ import annotations

import functools
import types
import typing
from typing import Any, Literal, Union

import stripe
import stripe.params
from typing_extensions import is_typeddict

from stripe_emulator import errors

# Keys of the SDK's per-call RequestOptions that some params classes inherit; they are
# never sent on the wire.
_REQUEST_OPTION_KEYS = frozenset(stripe.RequestOptions.__annotations__)


@functools.cache
def _hints(td: type) -> dict[str, Any]:
    """Resolved annotations of a TypedDict; names the SDK cannot resolve become Any."""
    resolved: dict[str, Any] = {}
    for key, ann in td.__annotations__.items():
        if key in _REQUEST_OPTION_KEYS:
            continue
        probe = type("Probe", (), {"__annotations__": {key: ann}, "__module__": td.__module__})
        try:
            resolved[key] = typing.get_type_hints(probe)[key]
        except Exception:
            resolved[key] = Any
    return resolved


def params_class(name: str) -> type:
    found: Any = stripe.params
    for part in name.split("."):  # `checkout.SessionCreateParams` lives in a submodule
        found = getattr(found, part)
    cls: type = found
    return cls


def _join(path: str, key: str) -> str:
    return f"{path}[{key}]" if path else key


def _literal_strings(tp: Any) -> list[str]:
    return [str(v) for v in typing.get_args(tp) if isinstance(v, str)]


def _check(value: Any, tp: Any, path: str) -> None:
    """Raise a StripeError if `value` (as parsed from the form) does not fit `tp`."""
    if tp is Any or tp is object:
        return
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        _check_union(value, typing.get_args(tp), path)
        return
    if origin is Literal:
        choices = _literal_strings(tp)
        if str(value) not in choices:
            raise errors.invalid_choice(path, [c for c in choices if c] or choices)
        return
    if is_typeddict(tp):
        if not isinstance(value, dict):
            raise errors.invalid_value(path, f"Invalid object: {path}")
        check_typeddict(value, tp, path)
        return
    if origin in (list, typing.List):  # noqa: UP006
        items = value if isinstance(value, list) else None
        if items is None:
            raise errors.invalid_value(path, f"Invalid array: {path}")
        (inner,) = typing.get_args(tp) or (Any,)
        for i, item in enumerate(items):
            _check(item, inner, f"{path}[{i}]")
        return
    if origin in (dict, typing.Dict):  # noqa: UP006
        if not isinstance(value, dict):
            raise errors.invalid_value(path, f"Invalid hash: {path}")
        return
    _check_scalar(value, tp, path)


def _check_scalar(value: Any, tp: Any, path: str) -> None:
    if isinstance(value, (dict, list)):
        raise errors.invalid_value(path, f"Invalid {getattr(tp, '__name__', 'value')}: {path}")
    text = str(value)
    if tp is bool:
        if text not in ("true", "false"):
            raise errors.invalid_value(path, f"Invalid boolean: {text}")
    elif tp is int:
        try:
            int(text)
        except ValueError:
            raise errors.invalid_integer(path) from None
    elif tp is float:
        try:
            float(text)
        except ValueError:
            raise errors.invalid_value(path, f"Invalid decimal: {text}") from None


def _check_union(value: Any, members: tuple[Any, ...], path: str) -> None:
    # `Literal['a', 'b'] | str` is the SDK's open enum: Stripe itself still only accepts
    # the listed values, so `str` is dropped when a Literal with real values is present.
    literals = [m for m in members if typing.get_origin(m) is Literal]
    enum_values = [v for lit in literals for v in _literal_strings(lit)]
    has_enum = any(v != "" for v in enum_values)
    candidates = [m for m in members if not (has_enum and m is str)]
    first_error: errors.StripeError | None = None
    for member in candidates:
        try:
            _check(value, member, path)
            return
        except errors.StripeError as exc:
            first_error = first_error or exc
    if has_enum and not isinstance(value, (dict, list)):
        non_literal = [m for m in candidates if typing.get_origin(m) is not Literal]
        if not non_literal or all(m in (int, float) for m in non_literal):
            raise errors.invalid_choice(path, [v for v in enum_values if v])
    assert first_error is not None
    raise first_error


def check_typeddict(params: dict[str, Any], td: type, path: str = "") -> None:
    hints = _hints(td)
    for key, value in params.items():
        if key not in hints:
            raise errors.unknown_parameter(_join(path, key))
        _check(value, hints[key], _join(path, key))
    required: frozenset[str] = getattr(td, "__required_keys__", frozenset())
    for key in sorted(required - _REQUEST_OPTION_KEYS):
        if key not in params:
            raise errors.missing_parameter(_join(path, key))


def validate(params: dict[str, Any], params_name: str | None) -> None:
    """Validate wire params of one call against `stripe.params.<params_name>`."""
    if params_name is None:
        return
    check_typeddict(params, params_class(params_name))
