import pytest

from shared.platform.settings import SettingsError, load_settings

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


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LOOP_API_KEY", "set-me:set-me"),
        ("LOOP_API_KEY", "real-key-8812:CHANGEME"),
        ("LOOP_SUBSCRIPTION_KEY", "set-me"),
        ("LOOP_SUBSCRIPTION_KEY", "<your subscription key>"),
        ("LOOP_SUBSCRIPTION_KEY", "${LOOP_SUBSCRIPTION_KEY}"),
    ],
)
def test_placeholder_keys_are_refused_naming_the_secret_and_how_to_set_it(name, value):
    with pytest.raises(SettingsError) as caught:
        load_settings({**BASE, name: value})
    message = str(caught.value)
    secret = {"LOOP_API_KEY": "loop-api-key", "LOOP_SUBSCRIPTION_KEY": "loop-subscription-key"}[name]
    assert f"{name} holds a placeholder" in message
    assert f"az keyvault secret set --vault-name <AZURE_KEY_VAULT_NAME> --name {secret}" in message
    assert "local.settings.json" in message
    assert value not in message
    assert "real-key-8812" not in message


@pytest.mark.parametrize(
    ("reference", "target"),
    [
        ("@Microsoft.KeyVault(VaultName=kv-fec-abc;SecretName=loop-api-key)", "secret loop-api-key in vault kv-fec-abc"),
        ("@Microsoft.KeyVault(SecretUri=https://kv-fec-abc.vault.azure.net/secrets/loop-api-key/)",
         "secret loop-api-key in vault kv-fec-abc"),
        ("@Microsoft.KeyVault(SecretUri=https://kv-fec-abc.vault.azure.net/secrets/loop-api-key/0123abcd)",
         "secret loop-api-key in vault kv-fec-abc"),
    ],
)
def test_an_unresolved_key_vault_reference_is_refused_naming_the_secret(reference, target):
    with pytest.raises(SettingsError) as caught:
        load_settings({**BASE, "LOOP_API_KEY": reference})
    message = str(caught.value)
    assert f"LOOP_API_KEY is an unresolved Key Vault reference ({target})" in message
    assert "Key Vault Secrets User" in message
    assert "--name loop-api-key" in message
    assert "key:secret" not in message  # not also reported as a malformed key
    assert "0123abcd" not in message


def test_read_only_commands_do_not_check_the_loop_keys():
    settings = load_settings({**BASE, "LOOP_API_KEY": "set-me:set-me", "LOOP_SUBSCRIPTION_KEY": "set-me"},
                             require_loop=False)
    assert settings.container == "api-import-ecrit"


def test_real_looking_keys_pass():
    settings = load_settings({**BASE, "LOOP_API_KEY": "a1b2c3:d4e5f6", "LOOP_SUBSCRIPTION_KEY": "0f9e8d7c6b5a"})
    assert settings.loop_subscription_key == "0f9e8d7c6b5a"


def test_local_settings_complete_the_environment_which_wins(tmp_path):
    from shared.platform.settings import environment_with_local_settings  # noqa: PLC0415

    (tmp_path / "local.settings.json").write_text(
        '{"IsEncrypted": false, "Values": {"FEC_IMPORT_CONTAINER": "from-file", "SAS_TTL_HOURS": 48}}'
    )
    merged = environment_with_local_settings(tmp_path, {"FEC_IMPORT_CONTAINER": "from-env", "OTHER": "x"})
    assert merged == {"FEC_IMPORT_CONTAINER": "from-env", "SAS_TTL_HOURS": "48", "OTHER": "x"}
    assert environment_with_local_settings(tmp_path / "nowhere", {"A": "1"}) == {"A": "1"}


def test_a_broken_local_settings_file_is_named(tmp_path):
    from shared.platform.settings import environment_with_local_settings  # noqa: PLC0415

    (tmp_path / "local.settings.json").write_text('{"Values": {"A": ')
    with pytest.raises(SettingsError) as caught:
        environment_with_local_settings(tmp_path, {})
    assert "local.settings.json is not valid JSON" in str(caught.value)


@pytest.mark.parametrize(("value", "mode"), [(None, "sas"), ("sas", "sas"), ("deposit", "deposit"), (" Deposit ", "deposit")])
def test_transfer_mode_is_sas_by_default_or_deposit(value, mode):
    env = BASE if value is None else {**BASE, "LOOP_TRANSFER_MODE": value}
    assert load_settings(env).loop_transfer_mode == mode


def test_an_unknown_transfer_mode_is_refused_with_the_others():
    with pytest.raises(SettingsError) as caught:
        load_settings({**BASE, "LOOP_TRANSFER_MODE": "upload", "SAS_TTL_HOURS": "2"})
    message = str(caught.value)
    assert "LOOP_TRANSFER_MODE must be one of sas, deposit, got 'upload'" in message
    assert "SAS_TTL_HOURS" in message


def test_the_reports_container_is_a_container_of_its_own():
    assert load_settings(BASE).reports_container == "api-import-ecrit-reports"
    for value, reason in (
        ("api-import-ecrit", "must differ from FEC_IMPORT_CONTAINER"),
        ("fec-import-reports", "must differ from IMPORT_REPORT_CONTAINER"),
        ("Reports_1", "must be a container name"),
        ("ab", "must be a container name"),
    ):
        with pytest.raises(SettingsError, match=reason):
            load_settings({**BASE, "REPORTS_CONTAINER": value})
