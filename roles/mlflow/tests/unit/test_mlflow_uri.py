"""Unit tests for plugins/filter/mlflow_uri.py (the sftp:// artifact URI filter, module_utils/sftp_uri.py).

Every URI form from the user's notes (shared/seed/mlflow-tracking-notes.md) is here: the broken
ones must be refused with the corrected URI, the good one must pass unchanged.
Run: pytest roles/mlflow/tests/unit
"""

from __future__ import annotations

import pytest
from ansible_collections.mlops.mlflow.plugins.filter import mlflow_uri

check = mlflow_uri.mlflow_sftp_uri_check
compose = mlflow_uri.mlflow_sftp_uri_compose
parts = mlflow_uri.mlflow_sftp_uri_parts

GOOD = "sftp://mlops@192.168.1.70:22/home/mlops/mlflow/mlruns"


def test_good_form_from_the_notes_passes_unchanged():
    result = check(GOOD)
    assert result["ok"] is True
    assert result["uri"] == GOOD
    assert result["suggestion"] == GOOD
    assert result["error"] == ""
    assert (result["user"], result["host"], result["port"], result["path"]) == (
        "mlops",
        "192.168.1.70",
        22,
        "/home/mlops/mlflow/mlruns",
    )


@pytest.mark.parametrize(
    ("uri", "expected_problem"),
    [
        # The notes' Python example: triple slash, user@host ends up in the path.
        ("sftp:///mlops@192.168.1.70/home/mlops/mlflow/mlruns", "three slashes"),
        # The notes' `mlflow server` command line: triple slash AND empty port.
        ("sftp:///mlops@192.168.1.70:/home/mlops/mlflow/mlruns", "three slashes"),
        ("sftp:///mlops@192.168.1.70:/home/mlops/mlflow/mlruns", "empty port"),
        # Empty port alone.
        ("sftp://mlops@192.168.1.70:/home/mlops/mlflow/mlruns", "empty port"),
        # '~' is not expanded ("home 디렉토리의 `~` 가 인식되지 않는 문제").
        ("sftp://mlops@192.168.1.70/~/mlflow/mlruns", "'~' is not expanded"),
        ("sftp://mlops@192.168.1.70:22/~/mlflow/mlruns", "'~' is not expanded"),
        ("sftp://mlops@192.168.1.70:22/~mlops/mlflow/mlruns", "'~mlops' is not expanded"),
        ("sftp://mlops@192.168.1.70:~/mlflow/mlruns", "'~' is not expanded"),
        # Relative paths (scp style, or composed from a relative inventory path).
        ("sftp://mlops@192.168.1.70:mlflow/mlruns", "relative path 'mlflow/mlruns'"),
        ("sftp://mlops@192.168.1.70:22:mlflow/mlruns", "relative path 'mlflow/mlruns'"),
        # Missing user.
        ("sftp://192.168.1.70:22/home/mlops/mlflow/mlruns", "no user"),
        ("sftp://@192.168.1.70:22/home/mlops/mlflow/mlruns", "no user"),
        # Missing scheme (scp habit) and a wrong ssh-ish scheme.
        ("mlops@192.168.1.70:22/home/mlops/mlflow/mlruns", "missing 'sftp://'"),
        ("ssh://mlops@192.168.1.70:22/home/mlops/mlflow/mlruns", "must be 'sftp://'"),
        # '..' segments.
        ("sftp://mlops@192.168.1.70:22/home/mlops/x/../mlflow/mlruns", "'..'"),
        # No path.
        ("sftp://mlops@192.168.1.70:22", "no path"),
        # Details that cannot be used: a password, a query, a fragment, whitespace.
        ("sftp://mlops:secret@192.168.1.70:22/home/mlops/mlflow/mlruns", "password"),
        ("sftp://mlops@192.168.1.70:22/home/mlops/mlflow/mlruns?x=1", "query"),
        ("sftp://mlops@192.168.1.70:22/home/mlops/mlflow/mlruns#frag", "fragment"),
        (" sftp://mlops@192.168.1.70:22/home/mlops/mlflow/mlruns", "whitespace"),
        ("sftp://mlops@192.168.1.70:22/home/mlops/mlflow/ mlruns", "whitespace"),
    ],
)
def test_broken_forms_are_refused_with_the_corrected_uri(uri, expected_problem):
    result = check(uri)
    assert result["ok"] is False
    assert expected_problem in result["error"]
    assert result["suggestion"] == GOOD
    # The suggestion itself must pass.
    assert check(result["suggestion"])["ok"] is True


@pytest.mark.parametrize("port", ["0", "65536", "70000", "22a", "-1", "+22"])
def test_bad_ports_are_refused(port):
    result = check(f"sftp://mlops@192.168.1.70:{port}/home/mlops/mlflow/mlruns")
    assert result["ok"] is False
    assert "bad port" in result["error"]
    assert result["suggestion"] == GOOD


def test_tilde_of_another_user_maps_to_that_home():
    result = check("sftp://mlops@h:22/~bob/mlruns")
    assert result["ok"] is False
    assert result["suggestion"] == "sftp://mlops@h:22/home/bob/mlruns"


def test_tilde_in_the_middle_of_the_path_is_refused():
    result = check("sftp://mlops@h:22/home/mlops/~/mlruns")
    assert result["ok"] is False
    assert result["suggestion"] == "sftp://mlops@h:22/home/mlops/mlruns"


def test_home_parameter_is_used_for_corrections():
    result = check("sftp://mlops@h:22/~/mlruns", home="/srv/mlops")
    assert result["suggestion"] == "sftp://mlops@h:22/srv/mlops/mlruns"


def test_default_user_fills_a_missing_user():
    result = check("sftp://h:22/srv/a", default_user="svc")
    assert result["ok"] is False
    assert result["suggestion"] == "sftp://svc@h:22/srv/a"


def test_missing_port_is_accepted_and_written_out():
    result = check("sftp://mlops@192.168.1.70/home/mlops/mlflow/mlruns")
    assert result["ok"] is True
    assert result["uri"] == GOOD


def test_trailing_slash_and_double_slashes_are_normalised():
    result = check("sftp://mlops@192.168.1.70:22//home/mlops//mlflow/mlruns/")
    assert result["ok"] is True
    assert result["uri"] == GOOD


def test_non_default_port_is_kept():
    result = check("sftp://mlops@art.example.com:2222/srv/mlruns")
    assert result["ok"] is True
    assert result["port"] == 2222
    assert result["uri"] == "sftp://mlops@art.example.com:2222/srv/mlruns"


def test_ipv6_host_in_brackets():
    result = check("sftp://mlops@[fd00::70]:22/home/mlops/mlflow/mlruns")
    assert result["ok"] is True
    assert result["host"] == "fd00::70"
    assert result["uri"] == "sftp://mlops@[fd00::70]:22/home/mlops/mlflow/mlruns"


@pytest.mark.parametrize("uri", ["s3://bucket/mlruns", "file:///srv/mlruns", "/home/mlops/mlflow/mlruns"])
def test_non_sftp_locations_are_refused_without_a_guess(uri):
    result = check(uri)
    assert result["ok"] is False
    assert result["suggestion"] is None
    assert result["error"]


@pytest.mark.parametrize("value", ["", "   ", None])
def test_empty_uri(value):
    result = check(value)
    assert result["ok"] is False
    assert "empty" in result["error"]


def test_bad_host_and_user_names():
    assert "bad host" in check("sftp://mlops@bad_host!:22/srv/a")["error"]
    assert "bad user" in check("sftp://ml%ops@h:22/srv/a")["error"]


def test_compose_from_inventory_parts():
    assert compose("192.168.1.70", "/home/mlops/mlflow/mlruns", "mlops", 22) == GOOD
    assert compose("fd00::70", "/srv/a", "mlops", 2222) == "sftp://mlops@[fd00::70]:2222/srv/a"
    assert compose("[fd00::70]", "/srv/a") == "sftp://mlops@[fd00::70]:22/srv/a"


def test_check_accepts_inventory_parts():
    good = check({"host": "192.168.1.70", "port": 22, "path": "/home/mlops/mlflow/mlruns", "user": "mlops"})
    assert good["ok"] is True
    assert good["uri"] == GOOD


@pytest.mark.parametrize(
    ("path", "expected_problem"),
    [
        ("mlflow/mlruns", "relative path"),
        ("~/mlflow/mlruns", "'~' is not expanded"),
        ("/home/mlops/~/mlflow/mlruns", "'~' is not expanded"),
        ("", "no path"),
        # A trailing space and a zero-width space pasted from a chat: invisible in the inventory.
        ("/home/mlops/mlflow/mlruns ", "U+0020 SPACE at position 26"),
        ("/home/mlops/ml\u200bflow/mlruns", "U+200B ZERO WIDTH SPACE at position 15"),
    ],
)
def test_bad_inventory_paths_are_refused(path, expected_problem):
    result = check({"host": "192.168.1.70", "port": 22, "path": path, "user": "mlops"})
    assert result["ok"] is False
    assert expected_problem in result["error"]
    assert result["suggestion"] == GOOD


def test_inventory_parts_bad_port_and_missing_user():
    result = check({"host": "192.168.1.70", "port": 0, "path": "/home/mlops/mlflow/mlruns", "user": "mlops"})
    assert result["ok"] is False
    assert "bad port" in result["error"]
    missing = check({"host": "192.168.1.70", "port": 22, "path": "/home/mlops/mlflow/mlruns", "user": ""})
    assert "no user" in missing["error"]
    assert missing["suggestion"] == GOOD


def test_parts_of_a_valid_uri_and_refusal_of_an_invalid_one():
    assert parts(GOOD) == {
        "user": "mlops",
        "host": "192.168.1.70",
        "port": 22,
        "path": "/home/mlops/mlflow/mlruns",
    }
    with pytest.raises(ValueError, match="three slashes"):
        parts("sftp:///mlops@192.168.1.70/home/mlops/mlflow/mlruns")


def test_filter_module_exports_the_filters():
    filters = mlflow_uri.FilterModule().filters()
    assert set(filters) == {"mlflow_sftp_uri_check", "mlflow_sftp_uri_compose", "mlflow_sftp_uri_parts"}


@pytest.mark.parametrize("host", ["192.168.1.70:22", "192.168.1.70\u200b", "mlflow-artifacts:22"])
def test_a_port_or_an_invisible_character_in_the_host_is_refused(host):
    result = check({"host": host, "port": 22, "path": "/home/mlops/mlflow/mlruns", "user": "mlops"})
    assert result["ok"] is False
    assert "[" not in result["suggestion"]
    assert result["suggestion"].endswith(":22/home/mlops/mlflow/mlruns")


def test_an_ipv6_host_is_still_accepted():
    assert check({"host": "fd00::70", "port": 22, "path": "/srv/a", "user": "mlops"})["ok"]
