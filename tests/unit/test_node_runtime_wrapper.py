"""The real node's runtime wrapper (cluster/relman_cluster/node.py, OOM_CLAMP_RUNC): runc,
after a negative process.oomScoreAdj in the OCI spec it is given is raised to 0. Run here
against a stand-in runc that records what it was called with."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from relman_cluster.node import OOM_CLAMP_RUNC, cgroup_root_for


def wrapper(tmp_path: Path) -> tuple[Path, Path]:
    record = tmp_path / "argv.json"
    fake = tmp_path / "runc"
    fake.write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        f"json.dump(sys.argv[1:], open({str(record)!r}, 'w'))\n"
    )
    fake.chmod(0o755)
    path = tmp_path / "oom-clamp-runc"
    path.write_text(OOM_CLAMP_RUNC.format(python=sys.executable, runc=str(fake)))
    path.chmod(0o755)
    return path, record


def bundle(tmp_path: Path, adj: int | None) -> Path:
    d = tmp_path / "bundle"
    d.mkdir()
    process: dict[str, object] = {"args": ["/pause"]}
    if adj is not None:
        process["oomScoreAdj"] = adj
    (d / "config.json").write_text(json.dumps({"ociVersion": "1.0.2", "process": process}))
    return d


def test_create_raises_a_negative_score_to_zero_then_runs_runc(tmp_path: Path) -> None:
    path, record = wrapper(tmp_path)
    b = bundle(tmp_path, -998)
    args = ["--root", "/run/x", "create", "--bundle", str(b), "--pid-file", "p", "abc123"]
    subprocess.run([str(path), *args], check=True, timeout=30)
    assert json.loads(record.read_text()) == args
    spec = json.loads((b / "config.json").read_text())
    assert spec["process"] == {"args": ["/pause"], "oomScoreAdj": 0}


def test_a_score_that_needs_no_privilege_is_left_alone(tmp_path: Path) -> None:
    path, record = wrapper(tmp_path)
    b = bundle(tmp_path, 1000)
    before = (b / "config.json").read_text()
    subprocess.run([str(path), "create", f"--bundle={b}", "id"], check=True, timeout=30)
    assert (b / "config.json").read_text() == before
    assert json.loads(record.read_text()) == ["create", f"--bundle={b}", "id"]


def test_exec_process_files_are_clamped_too(tmp_path: Path) -> None:
    path, _ = wrapper(tmp_path)
    process = tmp_path / "process.json"
    process.write_text(json.dumps({"args": ["sh"], "oomScoreAdj": -997}))
    subprocess.run([str(path), "exec", "--process", str(process), "id"], check=True, timeout=30)
    assert json.loads(process.read_text())["oomScoreAdj"] == 0


def test_cgroup_root_is_per_work_directory(tmp_path: Path) -> None:
    a, b = cgroup_root_for(tmp_path / "a"), cgroup_root_for(tmp_path / "b")
    assert a != b and a.startswith("/relman-") and len(a) == len("/relman-") + 12
    assert cgroup_root_for(tmp_path / "a") == a
