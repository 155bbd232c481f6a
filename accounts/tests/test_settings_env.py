"""The typed environment readers behind settings: parse what is valid, fail loudly on the rest."""

import json
import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from opensync.settings.env import env_bool, env_choice, env_int, env_list, env_rate, env_str
from opensync.settings.storage import default_storage_from_env

NAME = "OPENSYNC_TEST_SETTING"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    monkeypatch.delenv(NAME, raising=False)
    monkeypatch.delenv(f"{NAME}_FILE", raising=False)


# --- env_bool -------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["1", "true", "TRUE", "Yes", "on", " true "])
def test_env_bool_true(monkeypatch, raw):
    monkeypatch.setenv(NAME, raw)
    assert env_bool(NAME, False) is True


@pytest.mark.parametrize("raw", ["0", "false", "False", "no", "OFF", ""])
def test_env_bool_false(monkeypatch, raw):
    monkeypatch.setenv(NAME, raw)
    assert env_bool(NAME, True) is False


@pytest.mark.parametrize("default", [True, False])
def test_env_bool_default_when_unset(default):
    assert env_bool(NAME, default) is default


@pytest.mark.parametrize("raw", ["maybe", "2", "ture", "y"])
def test_env_bool_rejects_other_values(monkeypatch, raw):
    monkeypatch.setenv(NAME, raw)
    with pytest.raises(ImproperlyConfigured, match=NAME):
        env_bool(NAME, False)


# --- env_int --------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "expected"), [("42", 42), (" 7 ", 7), ("-3", -3), ("0", 0)])
def test_env_int_parses(monkeypatch, raw, expected):
    monkeypatch.setenv(NAME, raw)
    assert env_int(NAME, 1) == expected


@pytest.mark.parametrize("raw", [None, "", "   "])
def test_env_int_default_when_unset_or_empty(monkeypatch, raw):
    if raw is not None:
        monkeypatch.setenv(NAME, raw)
    assert env_int(NAME, 60) == 60


@pytest.mark.parametrize("raw", ["12x", "1.5", "ten", "0x10"])
def test_env_int_rejects_non_integers(monkeypatch, raw):
    monkeypatch.setenv(NAME, raw)
    with pytest.raises(ImproperlyConfigured, match="not an integer"):
        env_int(NAME, 1)


def test_env_int_enforces_minimum(monkeypatch):
    monkeypatch.setenv(NAME, "10")
    assert env_int(NAME, 5000, minimum=10) == 10
    monkeypatch.setenv(NAME, "9")
    with pytest.raises(ImproperlyConfigured, match="at least 10"):
        env_int(NAME, 5000, minimum=10)


# --- env_list -------------------------------------------------------------------------------


def test_env_list_splits_and_strips(monkeypatch):
    monkeypatch.setenv(NAME, " a.example.com, b.example.com ,,c ")
    assert env_list(NAME, ["x"]) == ["a.example.com", "b.example.com", "c"]


def test_env_list_default_when_unset_is_a_copy():
    default = ["localhost"]
    value = env_list(NAME, default)
    assert value == ["localhost"]
    value.append("other")
    assert default == ["localhost"]


def test_env_list_empty_value_means_empty_list(monkeypatch):
    monkeypatch.setenv(NAME, "")
    assert env_list(NAME, ["localhost"]) == []


# --- env_choice -----------------------------------------------------------------------------

CHOICES = {"none", "optional", "mandatory"}


def test_env_choice_valid(monkeypatch):
    monkeypatch.setenv(NAME, " mandatory ")
    assert env_choice(NAME, "optional", CHOICES) == "mandatory"


def test_env_choice_default_when_unset():
    assert env_choice(NAME, "optional", CHOICES) == "optional"


@pytest.mark.parametrize("raw", ["Mandatory", "required", ""])
def test_env_choice_rejects_other_values(monkeypatch, raw):
    monkeypatch.setenv(NAME, raw)
    with pytest.raises(ImproperlyConfigured, match="must be one of"):
        env_choice(NAME, "optional", CHOICES)


# --- env_str and NAME_FILE secrets ----------------------------------------------------------


def test_env_str_value_and_default(monkeypatch):
    assert env_str(NAME) == ""
    assert env_str(NAME, "fallback") == "fallback"
    monkeypatch.setenv(NAME, "value")
    assert env_str(NAME, "fallback") == "value"


def test_env_str_reads_file_and_strips_newline(monkeypatch, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s3cr3t-from-file\n", encoding="utf-8")
    monkeypatch.setenv(f"{NAME}_FILE", str(secret))
    assert env_str(NAME) == "s3cr3t-from-file"


def test_env_str_file_wins_over_plain_value(monkeypatch, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("from-file", encoding="utf-8")
    monkeypatch.setenv(NAME, "from-env")
    monkeypatch.setenv(f"{NAME}_FILE", str(secret))
    assert env_str(NAME) == "from-file"


def test_env_str_missing_file_fails_loudly(monkeypatch, tmp_path):
    monkeypatch.setenv(f"{NAME}_FILE", str(tmp_path / "does-not-exist"))
    with pytest.raises(ImproperlyConfigured, match=f"{NAME}_FILE"):
        env_str(NAME, "fallback")


def test_env_str_directory_as_file_fails_loudly(monkeypatch, tmp_path):
    monkeypatch.setenv(f"{NAME}_FILE", str(tmp_path))
    with pytest.raises(ImproperlyConfigured, match="cannot be read"):
        env_str(NAME)


def test_env_str_empty_file_variable_is_ignored(monkeypatch):
    monkeypatch.setenv(NAME, "plain")
    monkeypatch.setenv(f"{NAME}_FILE", "")
    assert env_str(NAME) == "plain"


# --- env_rate -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("3000/m", (3000, 60)), ("30/h", (30, 3600)), ("5/5m", (5, 300)), (" 10/30s ", (10, 30)), ("2/D", (2, 86400))],
)
def test_env_rate_parses(monkeypatch, raw, expected):
    monkeypatch.setenv(NAME, raw)
    assert env_rate(NAME, "1/s") == expected


def test_env_rate_default_when_unset_and_off_turns_it_off(monkeypatch):
    assert env_rate(NAME, "120/m") == (120, 60)
    monkeypatch.setenv(NAME, "off")
    assert env_rate(NAME, "120/m") is None


@pytest.mark.parametrize("raw", ["lots", "100", "100/", "100/w", "x/m", "1.5/m", "0/m", "5/0m", "-1/m", "10/-5s"])
def test_env_rate_rejects_other_values(monkeypatch, raw):
    monkeypatch.setenv(NAME, raw)
    with pytest.raises(ImproperlyConfigured, match=NAME):
        env_rate(NAME, "1/s")


# --- DB_PGBOUNCER -------------------------------------------------------------------------------


def _databases(env):
    """The DATABASES a fresh process builds from this environment (settings read env at import)."""

    code = "import json; from django.conf import settings as s; print(json.dumps(s.DATABASES['default'], default=str))"
    full = {**os.environ, "DATABASE_URL": "postgres://u:p@db.example:6432/opensync", "SECRET_KEY": "x" * 50, **env}
    full.setdefault("DJANGO_SETTINGS_MODULE", "opensync.settings")
    out = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); " + code],
        env=full,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_database_defaults_keep_persistent_checked_connections():
    db = _databases({"DB_PGBOUNCER": "0"})
    assert db["CONN_MAX_AGE"] == 60
    assert db["CONN_HEALTH_CHECKS"] is True
    assert not db.get("DISABLE_SERVER_SIDE_CURSORS")


def test_pgbouncer_turns_off_server_side_cursors_and_prepared_statements():
    db = _databases({"DB_PGBOUNCER": "1"})
    assert db["DISABLE_SERVER_SIDE_CURSORS"] is True
    assert "prepare_threshold" not in db["OPTIONS"]


# --- OPENSYNC_STORAGE -------------------------------------------------------------------------------

S3_ENV = {"OPENSYNC_STORAGE": "s3", "OPENSYNC_S3_BUCKET": "opensync-files"}


def _settings_process(env, code: str) -> subprocess.CompletedProcess:
    """A fresh process that sets Django up from this environment (settings read env at import) and runs code."""
    full = {**os.environ, "DATABASE_URL": "postgres://u:p@db.example:6432/opensync", "SECRET_KEY": "x" * 50, **env}
    full.setdefault("DJANGO_SETTINGS_MODULE", "opensync.settings")
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); " + code], env=full, capture_output=True, text=True
    )


def test_s3_storage_from_the_environment():
    env = {
        **S3_ENV,
        "OPENSYNC_S3_ENDPOINT_URL": "http://minio:9000",
        "OPENSYNC_S3_REGION": "eu-west-3",
        "OPENSYNC_S3_PREFIX": "/opensync/",
        "OPENSYNC_S3_SIGNED_URL_SECONDS": "60",
        "OPENSYNC_S3_ADDRESSING_STYLE": "path",
        "OPENSYNC_S3_ACCESS_KEY_ID": "AKIAEXAMPLE",
        "OPENSYNC_S3_SECRET_ACCESS_KEY": "secret",
    }
    out = _settings_process(
        env, "import json; from django.conf import settings as s; print(json.dumps(s.STORAGES['default']))"
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": "opensync-files",
            "location": "opensync",
            "querystring_auth": True,
            "querystring_expire": 60,
            "signature_version": "s3v4",
            "addressing_style": "path",
            "default_acl": None,
            "file_overwrite": False,
            "endpoint_url": "http://minio:9000",
            "region_name": "eu-west-3",
            "access_key": "AKIAEXAMPLE",
            "secret_key": "secret",
        },
    }


def test_s3_storage_without_a_bucket_stops_the_start():
    out = _settings_process({"OPENSYNC_STORAGE": "s3", "OPENSYNC_S3_BUCKET": ""}, "pass")
    assert out.returncode != 0
    assert "ImproperlyConfigured: OPENSYNC_STORAGE=s3 needs OPENSYNC_S3_BUCKET." in out.stderr


@pytest.fixture
def storage_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith(("OPENSYNC_STORAGE", "OPENSYNC_S3_")):
            monkeypatch.delenv(name)
    return monkeypatch


def test_local_storage_is_the_default(storage_env):
    assert default_storage_from_env() == {"BACKEND": "django.core.files.storage.FileSystemStorage"}
    storage_env.setenv("OPENSYNC_STORAGE", "gcs")
    with pytest.raises(ImproperlyConfigured, match="OPENSYNC_STORAGE='gcs' must be one of"):
        default_storage_from_env()


def test_s3_storage_without_keys_leaves_them_to_boto3(storage_env):
    for name, value in S3_ENV.items():
        storage_env.setenv(name, value)
    options = default_storage_from_env()["OPTIONS"]
    assert "access_key" not in options and "secret_key" not in options and "endpoint_url" not in options
    assert options["querystring_expire"] == 300 and options["location"] == ""


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OPENSYNC_S3_ACCESS_KEY_ID": "AKIAEXAMPLE"}, "Set both OPENSYNC_S3_ACCESS_KEY_ID"),
        ({"OPENSYNC_S3_SECRET_ACCESS_KEY": "secret"}, "Set both OPENSYNC_S3_ACCESS_KEY_ID"),
        ({"OPENSYNC_S3_SIGNED_URL_SECONDS": "604801"}, "at most 604800"),
        ({"OPENSYNC_S3_SIGNED_URL_SECONDS": "0"}, "at least 1"),
        ({"OPENSYNC_S3_ADDRESSING_STYLE": "dns"}, "must be one of"),
    ],
)
def test_s3_storage_rejects_half_a_key_and_bad_values(storage_env, env, message):
    for name, value in {**S3_ENV, **env}.items():
        storage_env.setenv(name, value)
    with pytest.raises(ImproperlyConfigured, match=message):
        default_storage_from_env()
