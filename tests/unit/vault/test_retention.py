"""Retention policy: golden cases (tests/unit/vault/golden/retention/*.json) plus invariants.

Golden files are never rewritten by default. To regenerate deliberately:
    UPDATE_GOLDEN=1 pytest tests/unit/vault/test_retention.py            # every file
    UPDATE_GOLDEN='series_*' pytest tests/unit/vault/test_retention.py   # files matching a glob
then review `git diff` by hand: hand-written cases must not change silently.
"""

from __future__ import annotations

import difflib
import fnmatch
import json
import os
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from gravitypm_ops.names import BACKUP_KINDS
from gravitypm_ops.vault.retention import DEFAULT_RETENTION, Decision, RetainedBackup, RetentionPolicy, apply_policy

GOLDEN_DIR = Path(__file__).parent / "golden" / "retention"
GOLDEN_FILES = sorted(GOLDEN_DIR.glob("*.json"))
UTC = timezone.utc


def _dt(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def _backups(case: dict) -> list[RetainedBackup]:
    return [
        RetainedBackup(
            backup_id=b["backup_id"],
            finished=_dt(b["finished"]),
            verified=b.get("verified", False),
            safety_until=_dt(b["safety_until"]) if b.get("safety_until") else None,
        )
        for b in case["backups"]
    ]


def _run(case: dict) -> Decision:
    return apply_policy(_backups(case), RetentionPolicy.from_dict(case["policy"]), _dt(case["now"]),
                        whole_buckets=case.get("whole_buckets", False))


def _golden_view(decision: Decision) -> dict:
    return {
        "keep": [{"backup_id": k.backup.backup_id, "reasons": list(k.reasons)} for k in decision.keep],
        "remove": [b.backup_id for b in decision.remove],
    }


def _dump_case(case: dict) -> str:
    """JSON with one backup / kept entry / removed id per line: readable diffs."""
    def rows(values: list, indent: str) -> str:
        if not values:
            return "[]"
        return "[\n" + ",\n".join(indent + "  " + json.dumps(v) for v in values) + "\n" + indent + "]"

    expected = case.get("expected")
    out = [f"  {json.dumps(k)}: {rows(v, '  ') if k == 'backups' else json.dumps(v)}"
           for k, v in case.items() if k != "expected"]
    if expected is not None:
        out.append('  "expected": {\n    "keep": ' + rows(expected["keep"], "    ")
                   + ',\n    "remove": ' + rows(expected["remove"], "    ") + "\n  }")
    return "{\n" + ",\n".join(out) + "\n}\n"


def _update_requested(name: str) -> bool:
    pattern = os.environ.get("UPDATE_GOLDEN", "")
    return pattern == "1" or (pattern != "" and fnmatch.fnmatch(name, pattern))


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=[p.stem for p in GOLDEN_FILES])
def test_golden(path: Path):
    case = json.loads(path.read_text())
    got = _golden_view(_run(case))
    if _update_requested(path.name):
        case["expected"] = got
        path.write_text(_dump_case(case))
        pytest.skip(f"updated {path.name}: review the diff")
    assert "expected" in case, f"{path.name} has no 'expected' (write it, or UPDATE_GOLDEN={path.name})"
    want = case["expected"]
    if got != want:
        diff = difflib.unified_diff(
            json.dumps(want, indent=1).splitlines(), json.dumps(got, indent=1).splitlines(),
            "expected", "got", lineterm="",
        )
        pytest.fail(f"{path.name}: decision differs from golden file\n" + "\n".join(diff), pytrace=False)


def test_golden_files_exist():
    assert len(GOLDEN_FILES) >= 10


# -- invariants ----------------------------------------------------------------------------

def _series(seed: int, n: int = 300) -> list[RetainedBackup]:
    """Irregular backups over ~2 years, some verified, some safety, some sharing a timestamp."""
    rnd = random.Random(seed)
    start = datetime(2023, 12, 1, tzinfo=UTC)
    out = []
    for i in range(n):
        t = start + timedelta(minutes=rnd.randrange(0, 60 * 24 * 730))
        if out and rnd.random() < 0.05:
            t = out[-1].finished  # identical timestamp
        safety = t + timedelta(days=rnd.choice([3, 400])) if rnd.random() < 0.05 else None
        out.append(RetainedBackup(f"b{i:04d}", t, verified=rnd.random() < 0.2, safety_until=safety))
    return out


POLICIES = [
    RetentionPolicy(),
    RetentionPolicy(last=3),
    RetentionPolicy(hourly=24, daily=7),
    RetentionPolicy(last=2, daily=10, weekly=4, monthly=12, yearly=5),
    RetentionPolicy(within_days=30),
    RetentionPolicy(within_days=7, monthly=6),
    *DEFAULT_RETENTION.values(),
]
NOW = datetime(2025, 12, 1, tzinfo=UTC)


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: str(p.to_dict()))
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_keep_and_remove_partition_the_input(policy, seed):
    backups = _series(seed)
    d = apply_policy(backups, policy, NOW)
    kept = [k.backup.backup_id for k in d.keep]
    removed = [b.backup_id for b in d.remove]
    assert not set(kept) & set(removed)
    assert sorted(kept + removed) == sorted(b.backup_id for b in backups)
    assert all(k.reasons for k in d.keep)
    for listed in ([k.backup for k in d.keep], list(d.remove)):  # both newest first
        assert listed == sorted(listed, key=lambda b: (b.finished, b.backup_id), reverse=True)


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: str(p.to_dict()))
def test_input_order_does_not_matter(policy):
    backups = _series(7)
    want = apply_policy(backups, policy, NOW)
    rnd = random.Random(0)
    for _ in range(5):
        shuffled = backups[:]
        rnd.shuffle(shuffled)
        assert apply_policy(shuffled, policy, NOW) == want
    assert apply_policy(iter(reversed(backups)), policy, NOW) == want  # any iterable


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: str(p.to_dict()))
@pytest.mark.parametrize("seed", [4, 5])
def test_protections_always_win(policy, seed):
    backups = _series(seed)
    d = apply_policy(backups, policy, NOW)
    reasons = {k.backup.backup_id: k.reasons for k in d.keep}
    newest = max(backups, key=lambda b: (b.finished, b.backup_id))
    newest_verified = max((b for b in backups if b.verified), key=lambda b: (b.finished, b.backup_id))
    assert "newest backup" in reasons[newest.backup_id]
    assert "newest verified" in reasons[newest_verified.backup_id]
    for b in backups:
        if b.safety_until and b.safety_until > NOW:
            assert f"safety backup until {b.safety_until.isoformat()}" in reasons[b.backup_id]
    # each rule keeps at most its count, one backup per bucket
    for rule in ("hourly", "daily", "weekly", "monthly", "yearly"):
        assert sum(rule in r for r in reasons.values()) <= getattr(policy, rule)
    if policy.last:
        assert sum(f"last {policy.last}" in r for r in reasons.values()) == min(policy.last, len(backups))
    # within_days keeps every backup strictly inside the window ending at the newest backup, no other
    within = f"within {policy.within_days} days"
    for b in backups:
        inside = bool(policy.within_days) and b.finished > newest.finished - timedelta(days=policy.within_days)
        assert (within in reasons.get(b.backup_id, ())) == inside, b


def test_within_days_is_counted_from_the_newest_backup_not_now():
    newest = datetime(2025, 3, 1, tzinfo=UTC)
    backups = [RetainedBackup(f"d{i}", newest - timedelta(days=i)) for i in range(40)]
    policy = RetentionPolicy(within_days=30)
    for now in (newest, newest + timedelta(days=90)):  # backups stopped for 3 months: same answer
        d = apply_policy(backups, policy, now)
        assert [k.backup.backup_id for k in d.keep] == [f"d{i}" for i in range(30)]
        assert [b.backup_id for b in d.remove] == [f"d{i}" for i in range(30, 40)]


def test_within_days_with_whole_buckets_keeps_every_backup_of_the_window():
    # logs (INCREMENTAL_KINDS): several backups a day, each holding other files
    newest = datetime(2025, 3, 1, 23, tzinfo=UTC)
    backups = [RetainedBackup(f"b{h:03d}", newest - timedelta(hours=h)) for h in range(0, 24 * 40, 6)]
    d = apply_policy(backups, DEFAULT_RETENTION["logs"], newest, whole_buckets=True)
    cutoff = newest - timedelta(days=30)
    assert {k.backup.backup_id for k in d.keep} == {b.backup_id for b in backups if b.finished > cutoff}
    assert all(b.finished <= cutoff for b in d.remove) and d.remove


def test_expired_safety_backup_is_not_protected():
    old = RetainedBackup("safety", datetime(2025, 1, 1, tzinfo=UTC), safety_until=datetime(2025, 1, 8, tzinfo=UTC))
    new = RetainedBackup("new", datetime(2025, 1, 9, tzinfo=UTC))
    policy = RetentionPolicy(last=1)
    assert apply_policy([old, new], policy, datetime(2025, 1, 8, tzinfo=UTC)).remove == (old,)  # until == now
    kept = apply_policy([old, new], policy, datetime(2025, 1, 7, 23, 59, tzinfo=UTC)).keep
    assert [k.backup for k in kept] == [new, old]
    assert kept[1].reasons == ("safety backup until 2025-01-08T00:00:00+00:00",)


def test_empty_policy_keeps_everything_and_protections_still_listed():
    backups = _series(9, n=20)
    d = apply_policy(backups, RetentionPolicy(), NOW)
    assert d.remove == ()
    assert all(k.reasons[0] == "policy is empty" for k in d.keep)
    assert "newest backup" in d.keep[0].reasons


def test_decision_to_dict_is_json():
    b = RetainedBackup("a", datetime(2025, 1, 1, 5, tzinfo=timezone(timedelta(hours=2))))
    d = apply_policy([b, RetainedBackup("b", datetime(2024, 1, 1, tzinfo=UTC))], RetentionPolicy(last=1), NOW)
    assert json.loads(json.dumps(d.to_dict())) == {
        "keep": [{"backup_id": "a", "finished": "2025-01-01T03:00:00+00:00", "reasons": ["last 1", "newest backup"]}],
        "remove": [{"backup_id": "b", "finished": "2024-01-01T00:00:00+00:00"}],
    }


# -- validation ----------------------------------------------------------------------------

def test_policy_from_dict_round_trip_and_is_empty():
    p = RetentionPolicy.from_dict({"last": 4, "daily": 7})
    assert p == RetentionPolicy(last=4, daily=7)
    assert RetentionPolicy.from_dict(p.to_dict()) == p
    assert p.to_dict() == {"last": 4, "hourly": 0, "daily": 7, "weekly": 0, "monthly": 0, "yearly": 0,
                           "within_days": 0}
    w = RetentionPolicy.from_dict({"within_days": 30})
    assert w == RetentionPolicy(within_days=30) and not w.is_empty
    assert RetentionPolicy.from_dict(w.to_dict()) == w
    assert not p.is_empty
    assert RetentionPolicy.from_dict({}).is_empty
    assert RetentionPolicy(daily=0).is_empty


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"daly": 7}, "unknown retention key 'daly'"),
        ({"keep_daily": 7, "daily": 1}, "'keep_daily'"),
        ({"daily": -1}, "'daily': must be a non-negative integer"),
        ({"weekly": 1.5}, "'weekly'"),
        ({"monthly": "6"}, "'monthly'"),
        ({"yearly": True}, "'yearly'"),
        ({"last": None}, "'last'"),
        ({"within_days": -1}, "'within_days': must be a non-negative integer"),
        ({"within_days": "30"}, "'within_days'"),
        ({"within_days": 1.5}, "'within_days'"),
        ({"within_days": False}, "'within_days'"),
        ({"within": 30}, "unknown retention key 'within'.*within_days"),
        ([("daily", 7)], "must be an object"),
    ],
)
def test_policy_validation_errors(data, match):
    with pytest.raises(ValueError, match=match):
        RetentionPolicy.from_dict(data)


def test_policy_constructor_validates_too():
    with pytest.raises(ValueError, match="'hourly'"):
        RetentionPolicy(hourly=-3)


def test_backup_times_must_be_aware_and_are_normalised_to_utc():
    with pytest.raises(ValueError, match="x: finished must be a timezone-aware"):
        RetainedBackup("x", datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="x: safety_until"):
        RetainedBackup("x", datetime(2025, 1, 1, tzinfo=UTC), safety_until=datetime(2025, 2, 1))
    with pytest.raises(ValueError, match="backup_id"):
        RetainedBackup("", datetime(2025, 1, 1, tzinfo=UTC))
    b = RetainedBackup("x", datetime(2025, 1, 1, 1, tzinfo=timezone(timedelta(hours=5))))
    assert b.finished == datetime(2024, 12, 31, 20, tzinfo=UTC) and b.finished.tzinfo is UTC


def test_apply_policy_rejects_naive_now_and_duplicate_ids():
    b = RetainedBackup("x", datetime(2025, 1, 1, tzinfo=UTC))
    with pytest.raises(ValueError, match="now must be a timezone-aware"):
        apply_policy([b], RetentionPolicy(last=1), datetime(2025, 1, 2))
    with pytest.raises(ValueError, match="duplicate backup_id.*x"):
        apply_policy([b, RetainedBackup("x", datetime(2025, 1, 2, tzinfo=UTC))], RetentionPolicy(last=1), NOW)


def test_default_retention_covers_every_kind():
    assert set(DEFAULT_RETENTION) == set(BACKUP_KINDS)
    assert DEFAULT_RETENTION["db"] == RetentionPolicy(last=4, daily=7, weekly=4, monthly=6)
    assert DEFAULT_RETENTION["fs"] == DEFAULT_RETENTION["config"] == RetentionPolicy(daily=7, weekly=4, monthly=6)
    # logs: the runbook's logrotate `rotate 30` -> keep 30 days (restic --keep-within 30d)
    assert DEFAULT_RETENTION["logs"] == RetentionPolicy(within_days=30)


def test_config_accepts_within_days_per_kind_and_names_the_key_in_errors():
    from gravitypm_ops.config import ConfigError, parse_config

    cfg = parse_config({"retention": {"logs": {"within_days": 14}},
                        "offsite_retention": {"logs": {"within_days": 60, "monthly": 12}}})
    assert cfg.retention["logs"] == RetentionPolicy(within_days=14)
    assert cfg.retention["db"] == DEFAULT_RETENTION["db"]
    assert cfg.offsite_policy("logs") == RetentionPolicy(within_days=60, monthly=12)
    assert parse_config(None).retention["logs"] == RetentionPolicy(within_days=30)
    with pytest.raises(ConfigError, match=r"retention\.logs .*'within_days': must be a non-negative integer"):
        parse_config({"retention": {"logs": {"within_days": -3}}})
    with pytest.raises(ConfigError, match=r"offsite_retention\.fs .*'within_days'"):
        parse_config({"offsite_retention": {"fs": {"within_days": "30d"}}})
