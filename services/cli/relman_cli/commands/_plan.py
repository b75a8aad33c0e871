"""``--dry-run``: what a promote would change, printed instead of promoting.

The Deployer's PlanPromotion answers in the clear (the same caller may read env values with
``releases info``); values are masked here unless ``--reveal``: env values and the data of
Secrets in the object diffs. With ``--exit-code`` the command exits 1 when the promote would
change anything, as ``git diff --exit-code`` does.
"""

from __future__ import annotations

import difflib
import json
from typing import Any, TextIO

import click
import yaml
from relman.v1 import deployer_pb2

from relman_cli import output
from relman_cli.commands._common import client, output_of
from relman_cli.commands._messages import to_dict

Plan = deployer_pb2.PromotionPlan
Json = dict[str, Any]

ADDED, REMOVED, CHANGED, UNCHANGED = (
    deployer_pb2.CHANGE_ADDED,
    deployer_pb2.CHANGE_REMOVED,
    deployer_pb2.CHANGE_CHANGED,
    deployer_pb2.CHANGE_UNCHANGED,
)
_WORDS = {ADDED: "added", REMOVED: "removed", CHANGED: "changed", UNCHANGED: "unchanged"}
# Fields of a Secret that hold its values.
SECRET_VALUES = ("data", "stringData")
EXIT_CHANGED = 1


def masked_object(kind: str, obj: Json, *, mask: bool) -> Json:
    """``obj`` with the values of a Secret replaced by ``****`` when ``mask``.

    >>> masked_object("Secret", {"data": {"A": "eA=="}, "type": "Opaque"}, mask=True)
    {'data': {'A': '****'}, 'type': 'Opaque'}
    """
    if not mask or kind != "Secret":
        return obj
    out = dict(obj)
    for key in SECRET_VALUES:
        if isinstance(out.get(key), dict):
            out[key] = dict.fromkeys(out[key], output.MASK)
    return out


def _loaded(text: str, kind: str, mask: bool) -> Json | None:
    return masked_object(kind, json.loads(text), mask=mask) if text else None


def object_diff(obj: deployer_pb2.ObjectPlan, *, mask: bool) -> list[str]:
    """A unified diff of one object's YAML, as it is (``a/``) and as it would be (``b/``)."""
    name = f"{obj.kind}/{obj.name}"

    def lines(text: str) -> list[str]:
        data = _loaded(text, obj.kind, mask)
        if data is None:
            return []
        dumped = yaml.safe_dump(data, sort_keys=True, default_flow_style=False, width=1000)
        return dumped.splitlines()

    return list(
        difflib.unified_diff(
            lines(obj.before_json),
            lines(obj.after_json),
            fromfile=f"a/{name}" if obj.before_json else "/dev/null",
            tofile=f"b/{name}" if obj.after_json else "/dev/null",
            lineterm="",
        )
    )


def _env_line(change: deployer_pb2.EnvPlan, mask: bool) -> str:
    if change.change == ADDED:
        return f"+ {change.key}" if mask else f"+ {change.key}={change.new_value}"
    if change.change == REMOVED:
        return f"- {change.key}" if mask else f"- {change.key}={change.old_value}"
    shown = f"{change.key}={change.old_value} => {change.new_value}"
    return f"~ {change.key}" if mask else f"~ {shown}"


def _arrow(old: str, new: str) -> str:
    if old == new:
        return f"{new} (unchanged)"
    return f"{old or '(none)'} => {new or '(none)'}"


def plan_lines(plan: Plan, *, mask: bool) -> list[str]:
    """The plan for people: build, services, env, release command, objects, warnings."""
    active = plan.active_release_id or "(none)"
    lines = [f"Dry run: promoting {plan.release_id} over the active release {active}"]
    lines.append(f"Build: {_arrow(plan.active_build_id, plan.build_id)}")
    for service in plan.services:
        lines.append(f"Service {service.name}: {_WORDS.get(service.change, 'unknown')}")
        if service.old_image != service.new_image or service.change == UNCHANGED:
            lines.append(f"  image: {_arrow(service.old_image, service.new_image)}")
        for setting in service.settings:
            lines.append(f"  {setting.name}: {_arrow(setting.old_value, setting.new_value)}")
    if plan.env:
        lines.append("Env:")
        lines += [f"  {_env_line(change, mask)}" for change in plan.env]
    else:
        lines.append("Env: no changes")
    if plan.HasField("release_command"):
        command = plan.release_command
        lines.append(
            f"Release command: would run {' '.join(command.command)} (service "
            f"{command.service}, timeout {command.timeout_seconds}s) before the rollout"
        )
    else:
        lines.append("Release command: none")
    changed_objects = [o for o in plan.objects if o.change != UNCHANGED]
    if plan.objects:
        lines.append(
            f"Objects ({plan.backend}): {len(changed_objects)} of {len(plan.objects)} would change"
        )
    for obj in changed_objects:
        lines += object_diff(obj, mask=mask)
    lines += [f"WARNING: {warning}" for warning in plan.warnings]
    lines.append("Would change the app" if plan.changed else "No changes")
    return lines


def plan_data(plan: Plan, *, mask: bool) -> Json:
    """``-o json``: the plan's fields, changes as words, objects as JSON, masked as text."""
    data = to_dict(plan)
    for group in ("services", "env", "objects"):
        for item, message in zip(data.get(group, []), getattr(plan, group), strict=True):
            item["change"] = _WORDS.get(message.change, "unknown")
    if mask:
        for change in data.get("env", []):
            for side in ("old_value", "new_value"):
                if change.get(side):
                    change[side] = output.MASK
    for item, message in zip(data.get("objects", []), plan.objects, strict=True):
        item.pop("before_json", None)
        item.pop("after_json", None)
        item["before"] = _loaded(message.before_json, message.kind, mask)
        item["after"] = _loaded(message.after_json, message.kind, mask)
    return data


def dry_run(
    ctx: click.Context,
    app: str,
    release_id: str,
    *,
    force: bool = False,
    timeout: int = 0,
    reveal: bool = False,
    exit_code: bool = False,
    stream: TextIO | None = None,
) -> None:
    """Print the plan of promoting ``release_id`` (empty: the latest) on ``stream`` (default
    stdout); with ``exit_code``, exit 1 when it would change anything."""
    request = deployer_pb2.PromoteRequest(
        app=app, release_id=release_id, force=force, timeout_seconds=timeout
    )
    plan = client(ctx).deployer.call(lambda stub: stub.PlanPromotion, request)
    mask = not reveal
    result = output.Lines(plan_lines(plan, mask=mask), plan_data(plan, mask=mask))
    output.render(result, output_of(ctx), stream)
    if exit_code and plan.changed:
        ctx.exit(EXIT_CHANGED)
