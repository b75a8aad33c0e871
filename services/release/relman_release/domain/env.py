"""Environment changes: apply set/unset/replace, describe and diff.

>>> change = apply_env_change({"C": "1", "D": "x"}, {"B": "2", "A": "1", "C": "3"}, ["D"])
>>> change.description
'env add:A add:B change:C remove:D'
>>> dict(change.env)
{'A': '1', 'B': '2', 'C': '3'}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from relman_common.errors import InvalidArgument
from relman_common.vocabulary import check_env_size, listed, validate_env_key, validate_env_value

NO_CHANGE = "no change"


@dataclass(frozen=True)
class EnvDiff:
    """Keys added, changed and removed between two environments, each sorted by key."""

    added: list[tuple[str, str]]  # (key, new value)
    changed: list[tuple[str, str, str]]  # (key, old value, new value)
    removed: list[tuple[str, str]]  # (key, old value)

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.removed)

    @property
    def description(self) -> str:
        """``env add:A add:B change:C remove:D``: adds, then changes, then removes."""
        if self.empty:
            return NO_CHANGE
        parts = [f"add:{k}" for k, _ in self.added]
        parts += [f"change:{k}" for k, _, _ in self.changed]
        parts += [f"remove:{k}" for k, _ in self.removed]
        return "env " + " ".join(parts)


@dataclass(frozen=True)
class EnvChange:
    """The environment after a change, and how it differs from the one before."""

    env: dict[str, str]
    diff: EnvDiff

    @property
    def changed(self) -> bool:
        return not self.diff.empty

    @property
    def description(self) -> str:
        return self.diff.description


def diff_env(old: Mapping[str, str], new: Mapping[str, str]) -> EnvDiff:
    """How ``new`` differs from ``old``.

    >>> diff_env({"A": "1", "B": "2"}, {"B": "3", "C": "4"})
    EnvDiff(added=[('C', '4')], changed=[('B', '2', '3')], removed=[('A', '1')])
    """
    added = [(k, new[k]) for k in sorted(new.keys() - old.keys())]
    changed = [(k, old[k], new[k]) for k in sorted(new.keys() & old.keys()) if old[k] != new[k]]
    removed = [(k, old[k]) for k in sorted(old.keys() - new.keys())]
    return EnvDiff(added=added, changed=changed, removed=removed)


def apply_env_change(
    current: Mapping[str, str],
    set_: Mapping[str, str],
    unset: Iterable[str] = (),
    replace: bool = False,
) -> EnvChange:
    """The env that results from setting ``set_`` and removing ``unset`` from ``current``.

    With ``replace`` the env becomes exactly ``set_``. Every key is validated first; removing a
    key that is not set is an error that names the key. Nothing is applied when anything is
    wrong.
    """
    unset = validate_change(set_, unset, replace)
    missing = [key for key in unset if key not in current]
    if missing:
        names = listed(sorted(missing))
        noun = "key is" if len(missing) == 1 else "keys are"
        raise InvalidArgument(f"can not unset {names}: {noun} not set in the env", field="unset")

    if replace:
        new = dict(set_)
    else:
        new = dict(current)
        new.update(set_)
        for key in unset:
            del new[key]
    new = dict(sorted(new.items()))
    check_env_size(new)
    return EnvChange(env=new, diff=diff_env(current, new))


def validate_change(set_: Mapping[str, str], unset: Iterable[str], replace: bool) -> list[str]:
    """The checks a change passes whatever the current env: valid keys and values, and a
    coherent request. Returns ``unset`` without repeats."""
    unset = list(dict.fromkeys(unset))
    for key, value in set_.items():
        validate_env_key(key)
        validate_env_value(key, value)
    for key in unset:
        validate_env_key(key)
    if replace and unset:
        raise InvalidArgument("a replace sets the whole env: it can not also unset keys")
    both = sorted(set(unset) & set_.keys())
    if both:
        raise InvalidArgument(f"key {both[0]} is both set and unset in the same change")
    if not replace and not set_ and not unset:
        raise InvalidArgument("nothing to change: give a KEY=VALUE to set or a KEY to unset")
    return unset
