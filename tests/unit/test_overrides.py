"""apply_overrides: overrides on defaults, checked key by key, errors name the key."""

import pytest

from gravitypm_ops.overrides import apply_overrides, boolean, list_of, optional, percent, positive_number, whole_number

DEFAULTS = {"rotate": 30, "compress": True, "create": {"mode": "0644"}, "paths": ["/login"]}
CHECKERS = {
    "rotate": whole_number(-1, 1000),
    "compress": boolean,
    "create": lambda v: dict(v),
    "paths": list_of(str, "paths", into=list),
}


def test_overrides_replace_only_the_keys_given():
    assert apply_overrides({"rotate": 7}, CHECKERS, DEFAULTS) == {**DEFAULTS, "rotate": 7}
    assert apply_overrides({}, CHECKERS, DEFAULTS) == DEFAULTS
    # Without defaults only the checked overrides come back (config.py: OpsConfig holds the defaults).
    assert apply_overrides({"compress": False}, CHECKERS) == {"compress": False}


def test_values_come_back_normalised_by_the_checker():
    assert apply_overrides({"paths": ["/a"]}, {"paths": list_of(str, "paths")}) == {"paths": ("/a",)}


def test_defaults_are_not_mutated_between_calls():
    first = apply_overrides({}, CHECKERS, DEFAULTS)
    first["create"]["mode"] = "0600"
    first["paths"].append("/other")
    second = apply_overrides({"rotate": 1}, CHECKERS, DEFAULTS)
    assert second["create"] == {"mode": "0644"} and second["paths"] == ["/login"]
    assert DEFAULTS == {"rotate": 30, "compress": True, "create": {"mode": "0644"}, "paths": ["/login"]}


def test_unknown_keys_are_named_with_the_known_ones():
    with pytest.raises(ValueError, match=r"^unknown directive\(s\) 'a', 'rotat'; known directives: rotate, compress"):
        apply_overrides({"rotat": 30, "a": 1, "rotate": 3}, CHECKERS, DEFAULTS, noun="directive")


def test_a_bad_value_names_its_key():
    with pytest.raises(ValueError, match=r"^key 'rotate' must be a whole number from -1 to 1000$"):
        apply_overrides({"rotate": "30"}, CHECKERS, DEFAULTS)
    with pytest.raises(ValueError, match=r"^log_rotation\.compress must be true or false$"):
        apply_overrides({"compress": "yes"}, CHECKERS, DEFAULTS, path="log_rotation")


def test_a_type_error_in_a_checker_still_names_the_key():
    with pytest.raises(ValueError, match=r"^log_rotation\.create "):
        apply_overrides({"create": 5}, CHECKERS, DEFAULTS, path="log_rotation")  # dict(5): TypeError


def test_not_an_object_says_what_it_must_be():
    with pytest.raises(ValueError, match=r"^must be an object of action -> command; actions: rotate, compress"):
        apply_overrides(["rotate"], CHECKERS, noun="action", hint="command")
    with pytest.raises(ValueError, match="must be an object"):
        apply_overrides(None, CHECKERS)  # callers that accept null turn it into {} themselves


def test_nested_blocks_name_the_outer_key_and_the_inner_path():
    inner = {"db": positive_number, "fs": positive_number}

    def hours(value):
        return apply_overrides(value, inner, {"db": 7.0, "fs": 26.0}, path="freshness_hours", noun="kind")

    outer = {"freshness_hours": hours, "vault_prefix": str}
    assert apply_overrides({"freshness_hours": {"db": 3}}, outer) == {"freshness_hours": {"db": 3.0, "fs": 26.0}}
    with pytest.raises(ValueError, match=r"^key 'freshness_hours' freshness_hours\.db must be a number > 0$"):
        apply_overrides({"freshness_hours": {"db": 0}}, outer)
    with pytest.raises(ValueError, match=r"^key 'freshness_hours' unknown kind\(s\) 'logz'; known kinds: db, fs$"):
        apply_overrides({"freshness_hours": {"logz": 1}}, outer)


@pytest.mark.parametrize(
    "check, good, bad, message",
    [
        (boolean, (True, True), 1, "must be true or false"),
        (positive_number, (2, 2.0), 0, "must be a number > 0"),
        (positive_number, (0.5, 0.5), True, "must be a number > 0"),  # JSON true is not a number
        (percent, (99.5, 99.5), 100, r"must be a number between 0 and 100 \(exclusive\)"),
        (whole_number(1), (5, 5), 1.5, "must be a whole number >= 1"),
        (whole_number(1, 9), (9, 9), 10, "must be a whole number from 1 to 9"),
        (whole_number(0), (0, 0), False, "must be a whole number >= 0"),
        (optional(boolean), (None, ""), "x", "must be true or false"),
        (list_of(boolean, "flags", non_empty=True), ([True], (True,)), [], "must be a non-empty list of flags"),
        (list_of(boolean, "flags", example="[true]"), ([], ()), "x", r"must be a list of flags, e.g. \[true\]"),
        (list_of(boolean, "flags"), ([False], (False,)), [1], "must be true or false"),
    ],
)
def test_shared_checkers(check, good, bad, message):
    assert check(good[0]) == good[1]
    with pytest.raises(ValueError, match=message):
        check(bad)
