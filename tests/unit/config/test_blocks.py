"""The `alerts` and `housekeeping` config blocks: defaults, overrides, errors naming the key."""

import pytest

from gravitypm_ops.config import ConfigError, parse_config


def test_defaults_are_the_issue_numbers():
    cfg = parse_config(None)
    assert cfg.alerts == {"repeat_hours": 4.0}
    assert cfg.housekeeping == {"keep_days": 90, "archive": False, "log_keep_days": 30}


def test_override_keeps_the_other_defaults():
    cfg = parse_config({"housekeeping": {"keep_days": 0}, "alerts": {"repeat_hours": 0.5}})
    assert cfg.housekeeping == {"keep_days": 0, "archive": False, "log_keep_days": 30}
    assert cfg.alerts["repeat_hours"] == 0.5


@pytest.mark.parametrize(("overrides", "named"), [
    ({"alerts": {"repeat_hour": 1}}, "repeat_hour"),
    ({"alerts": {"repeat_hours": 0}}, "alerts.repeat_hours"),
    ({"housekeeping": {"keep_days": -1}}, "housekeeping.keep_days"),
    ({"housekeeping": {"archive": "yes"}}, "housekeeping.archive"),
])
def test_bad_values_name_the_key(overrides, named):
    with pytest.raises(ConfigError, match=named):
        parse_config(overrides)
