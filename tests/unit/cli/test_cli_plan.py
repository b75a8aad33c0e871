"""How ``--dry-run`` shows a PromotionPlan: lines for people, masked values, object diffs."""

from __future__ import annotations

import json

from relman.v1 import deployer_pb2, types_pb2
from relman_cli.commands._plan import object_diff, plan_data, plan_lines

CHANGED, ADDED, REMOVED = (
    deployer_pb2.CHANGE_CHANGED,
    deployer_pb2.CHANGE_ADDED,
    deployer_pb2.CHANGE_REMOVED,
)


def plan() -> deployer_pb2.PromotionPlan:
    secret = {"kind": "Secret", "metadata": {"name": "env-r2"}, "data": {"TOKEN": "czNjcmV0"}}
    return deployer_pb2.PromotionPlan(
        app="myapp",
        release_id="RB",
        active_release_id="RA",
        build_id="B2",
        active_build_id="B1",
        services=[
            deployer_pb2.ServicePlan(
                name="web",
                change=CHANGED,
                old_image="img:1",
                new_image="img:2",
                settings=[
                    deployer_pb2.SettingChange(name="scale.count", old_value="2", new_value="3")
                ],
            ),
            deployer_pb2.ServicePlan(name="worker", change=REMOVED, old_image="img:w"),
        ],
        env=[
            deployer_pb2.EnvPlan(key="TOKEN", change=ADDED, new_value="s3cret"),
            deployer_pb2.EnvPlan(key="PORT", change=CHANGED, old_value="80", new_value="8080"),
            deployer_pb2.EnvPlan(key="OLD", change=REMOVED, old_value="x"),
        ],
        release_command=types_pb2.ReleaseCommand(
            command=["bin/migrate", "--all"], service="web", timeout_seconds=600
        ),
        backend="kubernetes",
        objects=[
            deployer_pb2.ObjectPlan(
                kind="Secret", name="env-r2", change=ADDED, after_json=json.dumps(secret)
            ),
            deployer_pb2.ObjectPlan(
                kind="Deployment",
                name="web",
                change=deployer_pb2.CHANGE_UNCHANGED,
                before_json="{}",
                after_json="{}",
            ),
        ],
        changed=True,
        warnings=["app is currently updating (deployment DX)"],
    )


def test_masked_lines_name_keys_without_values() -> None:
    lines = plan_lines(plan(), mask=True)
    assert lines[:7] == [
        "Dry run: promoting RB over the active release RA",
        "Build: B1 => B2",
        "Service web: changed",
        "  image: img:1 => img:2",
        "  scale.count: 2 => 3",
        "Service worker: removed",
        "  image: img:w => (none)",
    ]
    assert lines[7:11] == ["Env:", "  + TOKEN", "  ~ PORT", "  - OLD"]
    assert lines[11] == (
        "Release command: would run bin/migrate --all (service web, timeout 600s) before the "
        "rollout"
    )
    assert lines[12] == "Objects (kubernetes): 1 of 2 would change"
    assert lines[-2:] == [
        "WARNING: app is currently updating (deployment DX)",
        "Would change the app",
    ]
    text = "\n".join(lines)
    assert "s3cret" not in text and "czNjcmV0" not in text and "8080" not in text
    assert "+  TOKEN: '****'" in lines


def test_revealed_lines_show_values_and_secret_data() -> None:
    lines = plan_lines(plan(), mask=False)
    assert lines[8:11] == ["  + TOKEN=s3cret", "  ~ PORT=80 => 8080", "  - OLD=x"]
    assert "+  TOKEN: czNjcmV0" in lines


def test_an_object_diff_is_unified_from_before_to_after() -> None:
    obj = deployer_pb2.ObjectPlan(
        kind="Deployment",
        name="web",
        change=CHANGED,
        before_json=json.dumps({"spec": {"image": "a", "replicas": 2}}),
        after_json=json.dumps({"spec": {"image": "b", "replicas": 2}}),
    )
    assert object_diff(obj, mask=True) == [
        "--- a/Deployment/web",
        "+++ b/Deployment/web",
        "@@ -1,3 +1,3 @@",
        " spec:",
        "-  image: a",
        "+  image: b",
        "   replicas: 2",
    ]
    removed = deployer_pb2.ObjectPlan(kind="Deployment", name="old", before_json='{"a": 1}')
    assert object_diff(removed, mask=True)[:2] == ["--- a/Deployment/old", "+++ /dev/null"]


def test_json_masks_values_and_gives_objects_as_data() -> None:
    data = plan_data(plan(), mask=True)
    assert [(e["key"], e["change"], e["new_value"]) for e in data["env"]] == [
        ("TOKEN", "added", "****"),
        ("PORT", "changed", "****"),
        ("OLD", "removed", ""),
    ]
    assert data["objects"][0]["after"]["data"] == {"TOKEN": "****"}
    assert data["objects"][0]["before"] is None
    assert data["services"][1]["change"] == "removed"
    assert plan_data(plan(), mask=False)["objects"][0]["after"]["data"] == {"TOKEN": "czNjcmV0"}


def test_a_plan_without_changes_says_so() -> None:
    quiet = deployer_pb2.PromotionPlan(
        release_id="RA", active_release_id="RA", build_id="B1", active_build_id="B1"
    )
    assert plan_lines(quiet, mask=True) == [
        "Dry run: promoting RA over the active release RA",
        "Build: B1 (unchanged)",
        "Env: no changes",
        "Release command: none",
        "No changes",
    ]
