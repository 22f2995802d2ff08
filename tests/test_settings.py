import pytest

from shared.settings import SettingsError, load_settings

BASE = {
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    "LOOP_API_KEY": "key:secret",
    "LOOP_SUBSCRIPTION_KEY": "sub",
}


def test_defaults_follow_the_architecture():
    settings = load_settings(BASE)
    assert settings.container == "api-import-ecrit"
    assert settings.loop_base_url == "https://api.cegid.com/loop-api-publiques"
    assert settings.loop_status_path == "/getImportStatus"
    assert settings.sas_ttl_hours == 24


def test_every_problem_is_named_in_one_error():
    with pytest.raises(SettingsError) as caught:
        load_settings({"SAS_TTL_HOURS": "12", "STATUS_POLL_CONCURRENCY": "lots"})
    message = str(caught.value)
    for name in ("AzureWebJobsStorage", "LOOP_API_KEY", "LOOP_SUBSCRIPTION_KEY", "SAS_TTL_HOURS", "STATUS_POLL_CONCURRENCY"):
        assert name in message


def test_api_key_must_be_key_colon_secret_and_is_not_echoed():
    with pytest.raises(SettingsError) as caught:
        load_settings({**BASE, "LOOP_API_KEY": "no-colon-here-7781"})
    assert "key:secret" in str(caught.value)
    assert "no-colon-here-7781" not in str(caught.value)


def test_identity_based_storage_is_accepted_and_repr_hides_secrets():
    settings = load_settings({**BASE, "AzureWebJobsStorage": "", "AzureWebJobsStorage__accountName": "acct"})
    assert settings.storage_account_name == "acct"
    assert "secret" not in repr(settings)
    assert "key:" not in repr(settings)


def test_status_path_gets_a_leading_slash_and_base_url_loses_trailing_one():
    settings = load_settings({**BASE, "LOOP_STATUS_PATH": "importStatus", "LOOP_API_BASE_URL": "http://x/"})
    assert settings.loop_status_path == "/importStatus"
    assert settings.loop_base_url == "http://x"


def test_sas_lifetime_is_capped_by_what_a_user_delegation_key_allows():
    assert load_settings({**BASE, "SAS_TTL_HOURS": "167"}).sas_ttl_hours == 167
    with pytest.raises(SettingsError) as caught:
        load_settings({**BASE, "SAS_TTL_HOURS": "168"})
    assert "at most 167" in str(caught.value)
    assert "user delegation key" in str(caught.value)


def test_backoff_and_download_settings_are_checked():
    settings = load_settings(BASE)
    assert (settings.backoff_base_seconds, settings.backoff_factor, settings.backoff_max_seconds) == (60, 2, 3600)
    assert settings.download_chunk_bytes == 4 * 1024 * 1024
    with pytest.raises(SettingsError) as caught:
        load_settings({**BASE, "RETRY_BACKOFF_FACTOR": "0.5", "BLOB_DOWNLOAD_CHUNK_BYTES": "1", "RETRY_BACKOFF_JITTER": "x"})
    for name in ("RETRY_BACKOFF_FACTOR", "BLOB_DOWNLOAD_CHUNK_BYTES", "RETRY_BACKOFF_JITTER"):
        assert name in str(caught.value)
