from pathlib import Path

import pytest

from eyepic.settings import Settings, SettingsError


def test_defaults_need_no_environment():
    s = Settings.from_env({})
    assert s.port == 8000 and s.index == "embedded" and s.data_dir == Path("../shared/data")


def test_environment_is_typed():
    s = Settings.from_env({"EYEPIC_PORT": "9001", "EYEPIC_MAX_K": "70", "EYEPIC_DATA_DIR": "/data",
                           "EYEPIC_MODEL_TIMEOUT_S": "2.5"})
    assert s.port == 9001 and s.max_k == 70 and s.data_dir == Path("/data") and s.model_timeout_s == 2.5


@pytest.mark.parametrize("env", [{"EYEPIC_PORT": "eighty"}, {"EYEPIC_PORT": "0"},
                                 {"EYEPIC_INDEX": "mongodb"}, {"EYEPIC_DEFAULT_K": "500"}])
def test_bad_values_are_clear_errors(env):
    with pytest.raises(SettingsError):
        Settings.from_env(env)


def test_overrides_win():
    assert Settings.from_env({"EYEPIC_PORT": "9001"}, port=9002).port == 9002


@pytest.mark.parametrize("env, match", [
    ({"EYEPIC_EVENTS_STORE": "redis"}, "EYEPIC_EVENTS_STORE"),
    ({"EYEPIC_API_KEYS": "ops:tooshort"}, "shorter than 16"),
    ({"EYEPIC_RATE_USER_BURST": "0"}, "EYEPIC_RATE_USER"),
    ({"EYEPIC_RATE_IP_PER_S": "-1"}, "EYEPIC_RATE_IP"),
    ({"EYEPIC_SESSION_SECRET": "short"}, "at least 32"),
    ({"EYEPIC_EVENT_CLOCK_SKEW_S": "-5"}, "SKEW"),
    ({"EYEPIC_EVENTS_INDEX_NAME": "Events/*"}, "EYEPIC_EVENTS_INDEX_NAME"),
    ({"EYEPIC_ES_BULK_CHUNK": "0"}, "EYEPIC_ES_BULK_CHUNK"),
    ({"EYEPIC_ES_BULK_THREADS": "0"}, "EYEPIC_ES_BULK_THREADS"),
    ({"EYEPIC_ES_BULK_THREADS": "64"}, "EYEPIC_ES_BULK_THREADS"),
    ({"EYEPIC_TF_THREADS": "-1"}, "EYEPIC_TF_THREADS"),
])
def test_bad_access_events_and_bulk_settings_are_named(env, match):
    with pytest.raises(SettingsError, match=match):
        Settings.from_env(env)


def test_the_events_store_follows_the_index_unless_set():
    assert Settings.from_env({}).events_backend == "sqlite"
    assert Settings.from_env({"EYEPIC_INDEX": "elasticsearch"}).events_backend == "elasticsearch"
    chosen = Settings.from_env({"EYEPIC_INDEX": "elasticsearch", "EYEPIC_EVENTS_STORE": "sqlite"})
    assert chosen.events_backend == "sqlite"
    s = Settings.from_env({"EYEPIC_VAR_DIR": "/srv/var", "EYEPIC_API_KEYS_FILE": "/run/secrets/keys"})
    assert s.events_path == Path("/srv/var/events/events.sqlite") and s.api_keys_file == Path("/run/secrets/keys")


def test_index_lock_stale_must_be_positive():
    assert Settings.from_env({"EYEPIC_INDEX_LOCK_STALE_S": "30"}).index_lock_stale_s == 30.0
    with pytest.raises(SettingsError, match="EYEPIC_INDEX_LOCK_STALE_S"):
        Settings.from_env({"EYEPIC_INDEX_LOCK_STALE_S": "0"})
