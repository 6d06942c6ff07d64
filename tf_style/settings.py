"""What every settings class (Config, RunOptions) shares: copies, field lists, the JSON round trip."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from tf_style.errors import InputError

_T = TypeVar("_T")


class Settings:
    """What Config and RunOptions share: copies, field lists and the JSON round trip."""

    def replace(self: _T, **changes: Any) -> _T:
        """A copy with some fields changed, validated again; InputError for a name that is no field."""
        type(self)._check_names(changes)
        return dataclasses.replace(self, **changes)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    def to_dict(self) -> dict[str, Any]:
        """Every field as a plain JSON value (tuples become lists); `from_dict` reverses it."""
        return {name: _jsonable(getattr(self, name)) for name in self.field_names()}

    @classmethod
    def from_dict(cls: type[_T], values: dict[str, Any]) -> _T:
        """The settings a `to_dict` (or a JSON file of it) describes; absent fields keep their defaults."""
        if not isinstance(values, dict):
            raise InputError(f"{cls.__name__}.from_dict expects a dict of fields; got {type(values).__name__}")
        cls._check_names(values)
        return cls(**values)

    @classmethod
    def _check_names(cls, names: dict[str, Any]) -> None:
        """InputError naming every key of `names` that is no field of `cls`, and the fields there are."""
        unknown = sorted(set(names) - set(cls.field_names()))
        if unknown:
            raise InputError(
                f"unknown {cls.__name__} field(s) {', '.join(unknown)}; valid fields are {', '.join(cls.field_names())}"
            )


def _jsonable(value: Any) -> Any:
    return [_jsonable(v) for v in value] if isinstance(value, (tuple, list)) else value


__all__ = ["Settings"]
