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


def test_index_lock_stale_must_be_positive():
    assert Settings.from_env({"EYEPIC_INDEX_LOCK_STALE_S": "30"}).index_lock_stale_s == 30.0
    with pytest.raises(SettingsError, match="EYEPIC_INDEX_LOCK_STALE_S"):
        Settings.from_env({"EYEPIC_INDEX_LOCK_STALE_S": "0"})
