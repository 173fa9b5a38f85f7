"""`Settings`: the base of every validated, frozen config (pruning, classification training, translation).

A subclass is a frozen dataclass whose fields are declared with `setting(...)`: the default, a one-line
help text and what the field accepts (bounds, choices). Construction checks every field against its
declaration, then runs the subclass's cross-field rules (`check`). `to_dict`, `from_dict` and `replace`
(de)serialise and copy. The command line reads the same declarations (`tsdtp.cli.flags`).
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from tsdtp.errors import ConfigError

RULE_KEY = "tsdtp.rule"
"""The dataclass-field metadata key under which `setting` stores a field's `Rule`."""


@dataclass(frozen=True)
class Rule:
    """What one settings field accepts, and how its command-line flag reads.

    low, high: bounds (None: unbounded); `low_open`/`high_open` exclude the bound itself.
    choices: the accepted values of a text field (of each item, for a tuple).
    flag: True for a flag named after the field, a string for another flag name, False for no flag.
    resolved: the field's value is resolved from other settings when it is not given (gamma from the
        method), so its flag defaults to "not given" (None).
    omit_default: `to_dict` leaves the field out while it holds its default, so a field added after runs
        were recorded keeps their config.json and their run hash (`tsdtp.runs.cache.config_hash`).
    A tuple field applies the bounds and choices to each of its items.
    """

    help: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] | None = None
    flag: bool | str = True
    resolved: bool = False
    omit_default: bool = False

    def span(self) -> str:
        """The accepted range in words, e.g. `in [0, 1)` or `>= 1`; empty when unbounded."""
        if self.low is not None and self.high is not None:
            return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        return ""

    def admits(self, value: Any) -> bool:
        """Whether one number lies within the bounds (NaN never does)."""
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return bool(above and below)


def setting(default: Any = dataclasses.MISSING, *, factory: Any = dataclasses.MISSING,
            help: str, **rule: Any) -> Any:
    """A settings field with its default (or default `factory`) and its `Rule` (help, bounds, choices, flag)."""
    return dataclasses.field(default=default, default_factory=factory, metadata={RULE_KEY: Rule(help, **rule)})


def rule_of(item: dataclasses.Field) -> Rule | None:
    """The `Rule` a field was declared with, or None for a plain field."""
    return item.metadata.get(RULE_KEY)


def field_default(item: dataclasses.Field) -> Any:
    """The default value of a dataclass field (from its default or its default factory)."""
    if item.default_factory is not dataclasses.MISSING:
        return item.default_factory()
    return item.default


@functools.cache
def field_types(cls: type) -> dict[str, Any]:
    """The resolved type hints of a settings class, by field name."""
    return typing.get_type_hints(cls)


def nested_settings(hint: Any) -> type[Settings] | None:
    """The settings class a field holds (e.g. `PruningConfig` in `TrainConfig.pruning`), else None."""
    return hint if isinstance(hint, type) and issubclass(hint, Settings) else None


def optional(hint: Any) -> bool:
    """Whether a type hint admits None (`int | None`)."""
    return isinstance(hint, types.UnionType) and type(None) in typing.get_args(hint)


def check_field(cls: type, item: dataclasses.Field, value: Any) -> None:
    """Raise ConfigError unless `value` is what field `item` of `cls` declares (None only where typed so)."""
    rule = rule_of(item)
    if value is None:
        if not optional(field_types(cls)[item.name]):
            raise ConfigError(f"{item.name} must be given (got None)")
        return
    if rule is None or nested_settings(field_types(cls)[item.name]) is not None:
        return
    listed = isinstance(value, (tuple, list))
    items = tuple(value) if listed else (value,)
    if rule.choices is not None:
        unknown = [v for v in items if v not in rule.choices]
        if unknown:
            raise ConfigError(f"unknown {item.name} {unknown[0]!r}; expected one of {', '.join(rule.choices)}")
    if rule.span() and not all(rule.admits(v) for v in items):
        if listed:
            verb = "hold values"
        else:
            verb = "be" if rule.low is not None and rule.high is not None else "be a number"
        raise ConfigError(f"{item.name} must {verb} {rule.span()} (got {value})")


class Settings:
    """Base of the frozen config dataclasses: field checks from `setting` rules, then `check`; (de)serialisation.

    `LABEL` names the kind of settings in errors ("unknown training settings: colour").
    """

    LABEL: ClassVar[str] = "settings"

    def __post_init__(self) -> None:
        for item in dataclasses.fields(self):  # type: ignore[arg-type]
            check_field(type(self), item, getattr(self, item.name))
        self.check()

    def check(self) -> None:
        """Cross-field rules of a subclass (raise ConfigError); none by default."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (nested settings become dictionaries; tuples become lists in JSON).

        Fields declared `omit_default` are left out while they hold their default (`from_dict` restores it).
        """
        data = {}
        for item in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, item.name)
            rule = rule_of(item)
            if rule is not None and rule.omit_default and value == field_default(item):
                continue
            data[item.name] = value.to_dict() if isinstance(value, Settings) else value
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Rebuild and re-validate settings from `to_dict` output (or its JSON); unknown keys are an error."""
        names = {item.name for item in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = set(data) - names
        if unknown:
            raise ConfigError(f"unknown {cls.LABEL} settings: {', '.join(sorted(unknown))}")
        values = {}
        for name, value in data.items():
            nested = nested_settings(field_types(cls)[name])
            if nested is not None and isinstance(value, Mapping):
                value = nested.from_dict(value)
            elif isinstance(value, list):
                value = tuple(value)
            values[name] = value
        return cls(**values)

    def replace(self, **changes: Any) -> Self:
        """A copy with some fields changed, validated again."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]
