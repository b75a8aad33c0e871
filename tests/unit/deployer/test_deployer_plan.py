"""The plan of a promote (a dry run): service, env and release-command changes computed from
a Deployable, and the sim backend's dry run against what it holds."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from relman.v1 import deployer_pb2
from relman_common.errors import InvalidArgument
from relman_common.manifest import (
    EnvSpec,
    Health,
    Port,
    ReleaseCommand,
    Scale,
    Service,
)
from relman_deployer.api.convert import plan_to_pb
from relman_deployer.app.runner import app_spec
from relman_deployer.backends.sim import SimBackend
from relman_deployer.domain.model import Deployable, Release
from relman_deployer.domain.plan import (
    Change,
    SettingChange,
    plan_env,
    plan_objects,
    plan_promotion,
    plan_service,
)

T0 = datetime(2030, 1, 1, tzinfo=UTC)
R1, R2 = "RAAAAAAAAAA", "RBBBBBBBBBB"
WEB = Service(
    "web",
    "registry.example/app:web.B1",
    command=("bin/web",),
    port=Port(5000),
    health=Health("/health"),
    scale=Scale(2, 2, cpu=250, memory=512),
)
WORKER = Service("worker", "registry.example/app:worker.B1", command=("bin/work",))


def release(rid: str, build: str, env: dict[str, str], minutes: int = 0) -> Release:
    return Release(rid, "myapp", build, T0 + timedelta(minutes=minutes), env)


def deployable(
    new: tuple[Service, ...],
    new_env: dict[str, str],
    old: tuple[Service, ...] | None = None,
    old_env: dict[str, str] | None = None,
    command: ReleaseCommand | None = None,
) -> Deployable:
    active = release(R1, "BAAAAAAAAAA", old_env or {}) if old is not None else None
    return Deployable(
        release=release(R2, "BBBBBBBBBBB", new_env, minutes=1),
        services=new,
        release_command=command,
        active=active,
        active_services=old or (),
    )


def test_an_image_and_scale_change_names_each_setting_that_differs() -> None:
    web2 = replace(WEB, image="registry.example/app:web.B2", scale=Scale(1, 4, cpu=500, memory=512))
    plan = plan_service(WEB, web2)
    assert plan.change is Change.CHANGED
    assert (plan.old_image, plan.new_image) == (WEB.image, web2.image)
    assert plan.settings == (
        SettingChange("scale.count", "2", "1-4"),
        SettingChange("scale.cpu", "250", "500"),
    )


def test_rollout_parameters_port_health_and_grace_are_settings() -> None:
    changed = replace(
        WEB,
        minimum=100,
        maximum=150,
        termination_grace=60,
        port=Port(5443, "https"),
        health=Health("/up", grace=10),
    )
    names = {c.name: (c.old_value, c.new_value) for c in plan_service(WEB, changed).settings}
    assert names == {
        "deployment.minimum": ("50%", "100%"),
        "deployment.maximum": ("200%", "150%"),
        "termination.grace": ("30s", "60s"),
        "port": ("http:5000", "https:5443"),
        "health": (
            "/health grace=5s interval=5s timeout=4s",
            "/up grace=10s interval=5s timeout=4s",
        ),
    }


def test_an_identical_service_is_unchanged_with_no_settings() -> None:
    plan = plan_service(WEB, replace(WEB))
    assert (plan.change, plan.settings) == (Change.UNCHANGED, ())


def test_services_are_added_removed_and_listed_in_the_new_order() -> None:
    worker_env = replace(WORKER, environment=(EnvSpec("QUEUE", "jobs"),))
    plan = plan_promotion(deployable((worker_env,), {}, old=(WEB,)))
    assert [(s.name, s.change) for s in plan.services] == [
        ("worker", Change.ADDED),
        ("web", Change.REMOVED),
    ]
    added, removed = plan.services
    assert (added.old_image, added.new_image) == ("", WORKER.image)
    assert SettingChange("environment", "", "QUEUE=jobs") in added.settings
    assert SettingChange("command", "", "bin/work") in added.settings
    assert (removed.old_image, removed.new_image) == (WEB.image, "")
    assert SettingChange("scale.memory", "512", "") in removed.settings


def test_env_adds_changes_and_removes_in_description_order_with_values() -> None:
    env = plan_env({"KEEP": "1", "OLD": "x", "PORT": "80"}, {"KEEP": "1", "PORT": "8080", "A": "="})
    assert [(e.key, e.change, e.old_value, e.new_value) for e in env] == [
        ("A", Change.ADDED, "", "="),
        ("PORT", Change.CHANGED, "80", "8080"),
        ("OLD", Change.REMOVED, "x", ""),
    ]


def test_the_first_release_of_an_app_adds_everything() -> None:
    plan = plan_promotion(deployable((WEB,), {"A": "1"}))
    assert plan.active_release_id == "" and plan.active_build_id == ""
    assert [s.change for s in plan.services] == [Change.ADDED]
    assert [(e.key, e.change) for e in plan.env] == [("A", Change.ADDED)]
    assert plan.changed


def test_the_release_command_is_part_of_the_plan() -> None:
    command = ReleaseCommand(("bin/migrate", "--all"), "web", 120)
    plan = plan_promotion(deployable((WEB,), {}, old=(WEB,), command=command))
    assert plan.release_command == command
    assert plan_promotion(deployable((WEB,), {}, old=(WEB,))).release_command is None


def test_the_active_release_again_with_equal_objects_is_no_change() -> None:
    d = deployable((WEB,), {"A": "1"}, old=(WEB,), old_env={"A": "1"})
    same = replace(d, release=d.active)
    assert not plan_promotion(same).changed
    # Another release with the same build, env and services still changes the release.
    assert plan_promotion(d).changed
    changed_object = plan_objects([("Deployment", "web", {"a": 1})], [("Deployment", "web", {})])
    assert plan_promotion(same, objects=changed_object).changed


def test_objects_pair_by_kind_and_name_and_list_the_removed_last() -> None:
    before = [("Deployment", "web", {"v": 1}), ("Deployment", "old", {"v": 1})]
    after = [("Secret", "env-r2", {"d": 1}), ("Deployment", "web", {"v": 2})]
    plans = plan_objects(before, after)
    assert [(p.kind, p.name, p.change) for p in plans] == [
        ("Secret", "env-r2", Change.ADDED),
        ("Deployment", "web", Change.CHANGED),
        ("Deployment", "old", Change.REMOVED),
    ]
    assert plans[1].before == {"v": 1} and plans[1].after == {"v": 2}
    assert plans[2].after is None


def test_the_message_carries_values_in_the_clear_and_the_changed_flag() -> None:
    command = ReleaseCommand(("bin/migrate",), "web", 60)
    plan = plan_promotion(
        deployable((WEB,), {"S": "secret"}, old=(WEB,), command=command),
        backend="sim",
        objects=plan_objects([], [("Secret", "env-x", {"stringData": {"S": "secret"}})]),
        warnings=("app is currently updating",),
    )
    msg = plan_to_pb(plan)
    assert msg.changed and msg.backend == "sim"
    assert [(e.key, e.change, e.new_value) for e in msg.env] == [
        ("S", deployer_pb2.CHANGE_ADDED, "secret")
    ]
    assert list(msg.release_command.command) == ["bin/migrate"]
    assert json.loads(msg.objects[0].after_json) == {"stringData": {"S": "secret"}}
    assert msg.objects[0].before_json == ""
    assert list(msg.warnings) == ["app is currently updating"]
    assert not plan_to_pb(replace(plan, release_command=None)).HasField("release_command")


# --- the sim backend's dry run ----------------------------------------------------------------


async def test_sim_plan_of_an_unknown_app_adds_its_objects_and_creates_nothing() -> None:
    sim = SimBackend(pod_delay=0)
    try:
        spec = app_spec("myapp", release(R1, "BAAAAAAAAAA", {"A": "1"}), (WEB,), 600)
        plans = await sim.plan(spec)
        assert [(p.kind, p.name, p.change) for p in plans] == [
            ("Secret", "env-raaaaaaaaaa", Change.ADDED),
            ("Deployment", "web", Change.ADDED),
        ]
        assert plans[0].after is not None and plans[0].after["stringData"] == {"A": "1"}
        assert "myapp" not in sim._cluster.apps  # not even an empty namespace
    finally:
        await sim.close()


async def test_sim_plan_diffs_against_what_it_holds_and_changes_nothing() -> None:
    sim = SimBackend(pod_delay=0)
    try:
        held = app_spec("myapp", release(R1, "BAAAAAAAAAA", {"A": "1"}), (WEB,), 600)
        await sim.apply(held)
        before_rs = sim.replica_sets("myapp", "web")
        assert [p.change for p in await sim.plan(held)] == [Change.UNCHANGED] * 2

        web2 = replace(WEB, image="registry.example/app:web.B2")
        new = app_spec("myapp", release(R2, "BBBBBBBBBBB", {"A": "2"}), (web2, WORKER), 600)
        plans = await sim.plan(new)
        assert [(p.kind, p.name, p.change) for p in plans] == [
            ("Secret", "env-rbbbbbbbbbb", Change.ADDED),
            ("Deployment", "web", Change.CHANGED),
            ("Deployment", "worker", Change.ADDED),
        ]
        web = plans[1]
        assert web.before is not None and web.after is not None
        assert web.before["spec"]["template"]["service"]["image"] == WEB.image
        assert web.after["spec"]["template"]["service"]["image"] == web2.image
        # Nothing moved: the same ReplicaSets, the same desired state.
        assert sim.replica_sets("myapp", "web") == before_rs
        assert sim.status("myapp").release_id == R1
        assert "worker" not in sim._cluster.apps["myapp"].deployments
    finally:
        await sim.close()


async def test_sim_plan_refuses_what_apply_refuses() -> None:
    sim = SimBackend(pod_delay=0)
    try:
        bad = app_spec("myapp", release(R1, "B", {"RELMAN_SIM_FAIL": "nope"}), (WEB,), 600)
        with pytest.raises(InvalidArgument):
            await sim.plan(bad)
    finally:
        await sim.close()
