"""The alert decision (issue 14 item 11): Alertmanager's semantics, pure, with an explicit clock; and the
book that keeps each alert's state in the vault, signed so a bucket writer cannot silence it."""

import logging
from datetime import UTC, datetime, timedelta

import pytest

from gravitypm_ops.airflow.alert_state import (
    FIRING,
    RECOVERED,
    REMINDER,
    RESOLVED,
    AlertBook,
    fingerprint,
    normalise,
    on_clear,
    on_firing,
)
from gravitypm_ops.vault.signing import Signer

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
FRESHNESS = "AirflowFailException: backup_age: fs: no backup yet; logs: no backup yet"


def fire(state, now, sig=None, repeat_hours=4.0, **facts):
    return on_firing(state, fingerprint=sig or fingerprint(FRESHNESS), now=now, repeat_hours=repeat_hours, facts=facts)


def test_first_firing_posts_and_records_since_and_count():
    decision = fire(None, T0, last_run="r1")
    assert decision.send == FIRING
    assert decision.state["status"] == FIRING and decision.state["since"] == T0.isoformat()
    assert decision.state["count"] == 1 and decision.state["last_run"] == "r1"


def test_the_same_failure_again_within_repeat_hours_posts_nothing_but_counts():
    # the storm: five runs in five minutes
    state = fire(None, T0).state
    for minute in range(1, 5):
        decision = fire(state, T0 + timedelta(minutes=minute), last_run=f"r{minute}")
        assert decision.send is None
        state = decision.state
    assert state["count"] == 5 and state["since"] == T0.isoformat() and state["last_run"] == "r4"
    assert state["last_sent"] == T0.isoformat()


def test_a_reminder_every_repeat_hours_while_it_keeps_firing():
    state = fire(None, T0).state
    assert fire(state, T0 + timedelta(hours=3, minutes=59)).send is None
    reminder = fire(state, T0 + timedelta(hours=4))
    assert reminder.send == REMINDER and reminder.state["last_sent"] == (T0 + timedelta(hours=4)).isoformat()
    assert reminder.state["since"] == T0.isoformat() and reminder.state["count"] == 2
    # the next one counts from the reminder, not from the first post
    assert fire(reminder.state, T0 + timedelta(hours=7)).send is None
    assert fire(reminder.state, T0 + timedelta(hours=8)).send == REMINDER


def test_repeat_hours_is_the_configured_interval():
    state = fire(None, T0, repeat_hours=0.5).state
    assert fire(state, T0 + timedelta(minutes=29), repeat_hours=0.5).send is None
    assert fire(state, T0 + timedelta(minutes=30), repeat_hours=0.5).send == REMINDER


def test_failing_a_different_way_is_a_change_of_state():
    state = fire(None, T0).state
    other = fingerprint("AirflowFailException: backup_age: logs: no backup yet")
    decision = fire(state, T0 + timedelta(minutes=5), sig=other)
    assert decision.send == FIRING
    assert decision.state["since"] == (T0 + timedelta(minutes=5)).isoformat() and decision.state["count"] == 1


def test_clearing_a_firing_alert_posts_recovered_once_and_keeps_a_resolved_state():
    state = fire(fire(None, T0).state, T0 + timedelta(minutes=1)).state
    decision = on_clear(state, now=T0 + timedelta(hours=1), facts={"recovered_run": "r9"})
    assert decision.send == RECOVERED
    assert decision.state["status"] == RESOLVED and decision.state["resolved_at"] == (T0 + timedelta(hours=1)).isoformat()
    assert decision.state["count"] == 2 and decision.state["since"] == T0.isoformat()  # for the message
    # already resolved, or never fired: nothing to say and nothing to write
    for quiet in (on_clear(decision.state, now=T0 + timedelta(hours=2)), on_clear(None, now=T0)):
        assert quiet.send is None and quiet.state is None


def test_firing_again_after_recovery_is_a_new_alert():
    resolved = on_clear(fire(None, T0).state, now=T0 + timedelta(minutes=10)).state
    decision = fire(resolved, T0 + timedelta(minutes=20))
    assert decision.send == FIRING and decision.state["count"] == 1
    assert decision.state["since"] == (T0 + timedelta(minutes=20)).isoformat() and "resolved_at" not in decision.state


def test_a_damaged_state_errs_on_the_side_of_a_reminder():
    state = {**fire(None, T0).state, "last_sent": "not a time"}
    assert fire(state, T0 + timedelta(minutes=1)).send == REMINDER


@pytest.mark.parametrize("first, second", [
    ("backup_age: db: last backup 8.2 h ago (limit 7 h)", "backup_age: db: last backup 11.9 h ago (limit 7 h)"),
    ("1 backup(s) failed verification: db 20261127T020000Z-4f1a2b3c4d (artifacts)",
     "1 backup(s) failed verification: db 20261128T020000Z-9e8d7c6b5a (artifacts)"),
    ("run manual__2026-12-01T08:00:00.123456+00:00 timed out", "run manual__2026-12-01T09:30:00+00:00 timed out"),
    ("lease 0f3c9a1e2b4d5f60 held by 3f2504e0-4f89-11d3-9a0c-0305e82c3301",
     "lease a1b2c3d4e5f60718 held by 9b2e6f10-1c2d-4e3f-8a9b-0c1d2e3f4a5b"),
    ("`/var/log/app`: 91.3% used, needs > 20% free", "`/var/log/app`: 95% used, needs > 20% free"),
])
def test_the_same_failure_with_other_numbers_ids_and_times_has_the_same_fingerprint(first, second):
    assert fingerprint(first) == fingerprint(second)


@pytest.mark.parametrize("first, second", [
    ("backup_age: fs: no backup yet; logs: no backup yet", "backup_age: logs: no backup yet"),
    ("MongoDB (gravitypm_mongo) unusable: connection refused", "MongoDB (gravitypm_mongo) unusable: Authentication failed"),
    ("ValueError: bad input", "KeyError: bad input"),
])
def test_a_different_failure_has_a_different_fingerprint(first, second):
    assert fingerprint(first) != fingerprint(second)


def test_normalise_keeps_the_words():
    assert normalise("fs:  last backup 30.5 h ago\n(limit 26 h)") == "fs: last backup # h ago (limit # h)"
    assert normalise("check_service_health failed") == "check_service_health failed"  # no digits: untouched


def test_alert_keys_stay_inside_the_alerts_folder():
    class Store:
        prefix = "production"

    book = AlertBook(Store())
    assert book.key_of("task/gravitypm_db_backup/preflight") == "production/alerts/task/gravitypm_db_backup/preflight.json"
    assert book.key_of("task/d/group.t[2]") == "production/alerts/task/d/group.t_2_.json"
    assert book.key_of("/../../x y") == "production/alerts/_/_/x_y.json"


class DictStore:
    """An object store's two JSON calls the book uses, over a dict (the bucket, as a hostile writer sees it)."""

    prefix = "production"

    def __init__(self):
        self.objects: dict[str, dict] = {}

    def read_json(self, key):
        return self.objects.get(key)

    def put(self, key, body):
        self.objects[key] = body


KEY = "task/gravitypm_backup_verification/audit_freshness"
SIGNER = Signer(["k" * 32])


def firing_book() -> tuple[AlertBook, DictStore]:
    store = DictStore()
    book = AlertBook(store, SIGNER)
    book.write(KEY, fire(None, T0, last_run="r1").state)
    return book, store


def test_a_signed_state_reads_back_as_written_without_its_signature():
    book, store = firing_book()
    stored = store.objects[book.key_of(KEY)]
    assert SIGNER.problem(stored) == "" and stored["key"] == KEY
    state = book.read(KEY)
    assert "signature" not in state and state["status"] == FIRING and state["key"] == KEY
    assert fire(state, T0 + timedelta(minutes=5)).send is None  # de-duplicated as before


@pytest.mark.parametrize("tamper, why", [
    (lambda state: {**state, "last_sent": (T0 + timedelta(days=30)).isoformat()}, "bad signature"),  # "posted" later
    (lambda state: {**state, "status": RESOLVED}, "bad signature"),  # silenced as resolved
    (lambda state: {k: v for k, v in state.items() if k != "signature"}, "not signed"),
    (lambda state: Signer(["x" * 32]).sign(state), "which Airflow does not hold"),  # a key of the writer's own
    (lambda state: ["not", "an", "object"], "not a JSON object"),
])
def test_a_state_rewritten_in_the_bucket_is_left_out_and_the_alert_posts(tamper, why, caplog):
    book, store = firing_book()
    store.objects[book.key_of(KEY)] = tamper(store.objects[book.key_of(KEY)])
    with caplog.at_level(logging.WARNING):
        assert book.read(KEY) is None
    assert why in caplog.text and "judged as never fired" in caplog.text
    assert fire(book.read(KEY), T0 + timedelta(minutes=5)).send == FIRING  # loud, not silent


def test_a_signed_state_of_another_alert_copied_over_this_one_is_left_out(caplog):
    book, store = firing_book()
    other = "task/gravitypm_db_backup/preflight"
    book.write(other, {**fire(None, T0).state, "status": RESOLVED})
    store.objects[book.key_of(KEY)] = store.objects[book.key_of(other)]
    assert book.read(KEY) is None and "written for another alert" in caplog.text
    assert book.read(other)["status"] == RESOLVED


def test_without_a_signer_states_are_plain_json_as_before():
    store = DictStore()
    book = AlertBook(store)
    book.write(KEY, fire(None, T0).state)
    assert "signature" not in store.objects[book.key_of(KEY)]
    assert book.read(KEY)["status"] == FIRING


def test_with_signing_turned_off_a_signed_state_is_read_and_rewritten_without_its_signature():
    book, store = firing_book()
    unsigned = AlertBook(store)
    state = unsigned.read(KEY)
    assert "signature" not in state and state["fingerprint"] == fingerprint(FRESHNESS)
    unsigned.write(KEY, state)
    assert "signature" not in store.objects[book.key_of(KEY)]


def test_a_state_stored_before_signing_keeps_its_fingerprint_under_the_old_name():
    store = DictStore()
    book = AlertBook(store)
    state = fire(None, T0).state
    store.objects[book.key_of(KEY)] = {**{k: v for k, v in state.items() if k != "fingerprint"},
                                       "signature": state["fingerprint"], "key": KEY}
    assert fire(book.read(KEY), T0 + timedelta(minutes=5)).send is None  # the same failure: not posted again
