"""The bench's own arithmetic: percentiles, verdicts, parsers, id seeding, stream checks."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest

from bench import cli, report, scale, stats, watchers
from bench.clients import StreamResult
from bench.procs import ProcessExited, ServiceProcess, free_port


@pytest.mark.parametrize("module", [stats, scale, cli])
def test_doc_examples_hold(module: object) -> None:
    failures, _tried = doctest.testmod(module)  # type: ignore[arg-type]
    assert failures == 0


def test_percentiles_come_from_sorted_samples_whatever_their_order() -> None:
    samples = [float(x) for x in range(100, 0, -1)]
    assert stats.percentile(samples, 50) == pytest.approx(50.5)
    assert stats.percentile(samples, 99) == pytest.approx(99.01)


def test_summary_reports_milliseconds_and_throughput_of_the_measured_phase() -> None:
    summary = stats.summarize_ms([0.001, 0.002, 0.003, 0.004], elapsed_s=0.5)
    assert summary["p50_ms"] == pytest.approx(2.5)
    assert summary["max_ms"] == pytest.approx(4.0)
    assert summary["per_s"] == pytest.approx(8.0)


def test_percentile_rejects_empty_samples_and_out_of_range_cuts() -> None:
    with pytest.raises(ValueError):
        stats.percentile([], 50)
    with pytest.raises(ValueError):
        stats.percentile([1.0, 2.0], 100)


def test_an_at_most_target_says_by_how_much_it_was_missed() -> None:
    missed = report.Target("x", actual=3.0, limit=2.0, unit="ms", at_most=True, limit_says="")
    met = report.Target("x", actual=1.0, limit=2.0, unit="ms", at_most=True, limit_says="")
    assert not missed.met and missed.verdict().startswith("MISSED by 1.50x")
    assert met.met and met.verdict() == "met"


def test_an_at_least_target_says_what_share_of_the_limit_was_reached() -> None:
    t = report.Target("x", actual=25.0, limit=100.0, unit="/s", at_most=False, limit_says="")
    assert not t.met and t.verdict() == "MISSED: 25% of the limit"


def test_a_lost_event_misses_the_zero_target() -> None:
    t = report.Target("lost", actual=1, limit=0, unit="events", at_most=True, limit_says="0")
    assert not t.met and "MISSED" in t.verdict()


def _results() -> dict[str, object]:
    unary = {"p50_ms": 1.0, "p99_ms": 2.0, "per_s": 1000.0}
    insert = {"p50_ms": 0.5, "p99_ms": 1.0, "per_s": 2000.0}
    service: dict[str, object] = {"p50_ms": 3.0, "p99_ms": 9.0, "per_s": 100.0}
    service |= {"floor_echo": unary, "floor_insert": insert}
    return {
        "floors": {"echo": {"release_create": {"c1": unary}}},
        "release": {"sqlite": {"release_create": {"c1": service}}},
        "scale": {
            "sqlite": {
                "100": {"first_page": {"p50_ms": 2.0, "p99_ms": 4.0}},
                "100k": {"first_page": {"p50_ms": 3.0, "p99_ms": 4.0}},
            }
        },
    }


def test_release_create_target_is_against_echo_plus_durable_insert() -> None:
    targets, _missing = report.targets(_results())  # type: ignore[arg-type]
    create = next(t for t in targets if "release create" in t.name)
    assert create.limit == pytest.approx(1.5 * (1.0 + 0.5))
    assert create.actual == 3.0 and not create.met


def test_ratios_divide_relman_by_its_floor_and_name_what_is_missing() -> None:
    ratios, missing = report.ratios(_results())  # type: ignore[arg-type]
    by_name = {r.name: r for r in ratios}
    assert by_name["release_create p50 sqlite 1 client(s)"].ratio == pytest.approx(2.0)
    assert by_name["list first page p50 sqlite 100k vs 100"].ratio == pytest.approx(1.5)
    assert any(m.startswith("200 promotes events/s") for m in missing)


def test_importtime_rows_keep_nesting_so_top_level_offenders_can_be_picked() -> None:
    stderr = (
        "import time: self [us] | cumulative | imported package\n"
        "import time:       344 |        344 |       _json\n"
        "import time:      4841 |       5184 |     json.scanner\n"
        "import time:      1036 |       6220 |   json.decoder\n"
        "import time:       412 |       7281 | json\n"
        "import time:       900 |        900 | click\n"
        "unrelated line\n"
    )
    rows = cli.parse_importtime(stderr)
    assert [r["depth"] for r in rows] == [3, 2, 1, 0, 0]
    top = cli.top_offenders(rows, n=1)
    assert [r["module"] for r in top["by_cumulative"]] == ["json"]
    assert [r["module"] for r in top["by_self"]] == ["json.scanner"]


def test_seeded_release_ids_are_unique_and_look_like_release_ids() -> None:
    ids = {scale.seeded_id(app, i) for app in range(3) for i in range(0, 2_000_000, 997)}
    assert len(ids) == 3 * len(range(0, 2_000_000, 997))
    assert all(len(i) == 11 and i.isupper() and i.startswith("R") for i in ids)


def test_scale_app_names_are_valid_relman_app_names() -> None:
    import re

    for n in (100, 10_000, 100_000, 1_000_000):
        assert re.fullmatch(r"[a-z][a-z0-9-]{0,29}", scale.app_name(n))


def test_a_stream_with_a_gap_or_a_duplicate_is_told_apart_from_a_whole_one() -> None:
    assert not StreamResult(seqs=[1, 2, 3]).gaps_or_duplicates(3)
    assert StreamResult(seqs=[1, 3]).gaps_or_duplicates(3)
    assert StreamResult(seqs=[1, 2, 2, 3]).gaps_or_duplicates(3)
    assert StreamResult(seqs=[1, 2]).gaps_or_duplicates(3)


def test_watcher_lag_counts_only_events_stamped_after_the_stream_opened() -> None:
    from relman.v1 import deployer_pb2, types_pb2

    res = StreamResult(
        first=deployer_pb2.Deployment(id="D1"),
        last=deployer_pb2.Deployment(id="D1", outcome=types_pb2.OUTCOME_SUCCEEDED, last_seq=2),
        seqs=[1, 2],
        received=[(1, 99.0, 100.5, "Started"), (2, 100.2, 100.25, "Started")],
        opened_at=100.0,
    )
    summary = watchers.summarize([res])
    assert summary["complete"] == 1
    assert summary["replayed"] == 1
    assert summary["lags_ms"] == [pytest.approx(50.0)]


def test_waiting_for_a_service_that_exited_fails_at_once_with_its_log(tmp_path: Path) -> None:
    log = tmp_path / "svc.log"
    proc = ServiceProcess("bench.no_such_module", [], log_path=log)
    # ProcessExited, not the TimeoutError that waiting out the deadline would give.
    with pytest.raises(ProcessExited, match="exited with 1"):
        proc.start(f"127.0.0.1:{free_port()}", timeout=120)


def test_completion_latency_runs_from_the_last_backend_event_to_the_final_message() -> None:
    from relman.v1 import deployer_pb2, types_pb2

    from bench.deployer import STATUS_DONE, completion_latency_s

    res = StreamResult(
        last=deployer_pb2.Deployment(outcome=types_pb2.OUTCOME_SUCCEEDED, last_seq=3),
        received=[
            (1, 10.0, 10.1, "StatusChange"),
            (2, 11.0, 11.1, "Started"),
            (3, 11.5, 11.6, "StatusChange"),
        ],
        events=[
            (1, "system/k8s/atom/app", "StatusChange", "Status: Running => Pending"),
            (2, "system/k8s/web-1-a", "Started", "Started container main"),
            (3, "system/k8s/atom/app", "StatusChange", STATUS_DONE),
        ],
        last_received_at=11.75,
    )
    assert completion_latency_s(res) == pytest.approx(0.75)
    res.last = deployer_pb2.Deployment(outcome=types_pb2.OUTCOME_ROLLED_BACK)
    assert completion_latency_s(res) is None
