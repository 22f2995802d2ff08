"""The Bicep templates, read with a Bicep parser (pycep-parser): the settings the app needs are set,
the identity-based connection is the one the host and the blob extension read, the app waits for
its roles, secrets are never written from a literal and never overwritten."""

from __future__ import annotations

import ast
import json
import os
import re
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from azurefunctions.extensions.bindings.blob import utils as blob_extension

import blob_trigger
import function_app
from local.host.bindings import registered_functions
from shared.platform import observability
from shared.platform.settings import SECRET_SETTINGS, SettingsError, load_settings
from tests.infra_templates import INFRA, parse

ROOT = Path(__file__).resolve().parent.parent
# Set by the platform or read by the host or the SDKs rather than by shared/platform/settings.py.
PLATFORM_SETTINGS = {
    "AzureWebJobsStorage__accountName", "AzureWebJobsStorage__credential", "AzureWebJobsStorage__clientId",
    "AZURE_CLIENT_ID", "APPLICATIONINSIGHTS_CONNECTION_STRING", "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
    "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY",  # read by the Python worker (shared/platform/observability.py)
    *observability.TRACES_SAMPLER_SETTINGS,  # read by the distro the worker configures
}
ROLE_IDS = {
    "storageBlobDataOwner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "storageBlobDataContributor": "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
    "storageBlobDataReader": "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
    "storageQueueDataContributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "storageTableDataContributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "keyVaultSecretsUser": "4633458b-17de-408a-b874-0445c86b69e6",
    "keyVaultSecretsOfficer": "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
    "monitoringMetricsPublisher": "3913510d-42f4-4e42-8a64-420c390055eb",
}




def body(resource: dict[str, Any]) -> dict[str, Any]:
    """A resource's or module's properties, under its loop or condition if it has one."""
    config = resource["config"]
    return config["config"] if "condition" in config or "loop_type" in config else config


def app_settings(resources: dict[str, Any]) -> dict[str, Any]:
    settings = body(resources["resources"]["app"])["properties"]["siteConfig"]["appSettings"]
    return {setting["name"]: setting["value"] for setting in settings}


def literal(template: dict[str, Any], value: Any) -> Any:
    """A variable's value when `value` names one (pycep writes identifiers and strings alike)."""
    variables = template["variables"]
    return variables[value]["value"] if isinstance(value, str) and value in variables else value


def settings_read_by_the_app() -> tuple[set[str], set[str]]:
    """(every setting shared/platform/settings.py reads, the ones it requires), from its source."""
    read, required = set(), set()
    for node in ast.walk(ast.parse((ROOT / "shared" / "platform" / "settings.py").read_text())):
        if not (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)):
            continue
        name = node.args[0].value
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]+", name) or name.islower():
            continue
        read.add(name)
        if any(k.arg == "required" and isinstance(k.value, ast.Name) and k.value.id == "require_loop"
               for k in node.keywords):
            required.add(name)
    return read, required


def binding_settings() -> set[str]:
    """Every %SETTING% in the functions' own binding metadata, and their connection settings."""
    names: set[str] = set()
    for function in registered_functions(function_app.app):
        for binding in json.loads(function.get_function_json())["bindings"]:
            for value in binding.values():
                names.update(re.findall(r"%([A-Za-z0-9_]+)%", str(value)))
    return names


def test_every_bicep_file_parses():
    files = sorted(INFRA.rglob("*.bicep"))
    assert len(files) >= 3
    for path in files:
        assert parse(path)["resources"] or parse(path)["modules"], path


def test_main_is_subscription_scoped_and_creates_the_resource_group(main):
    assert main["globals"]["scope"]["value"] == "subscription"
    (group_name,) = [n for n, r in main["resources"].items() if r["type"] == "Microsoft.Resources/resourceGroups"]
    module = main["modules"]["resources"]
    assert module["detail"]["path"] == "modules/resources.bicep"
    assert body(module)["scope"] == group_name
    assert (INFRA / "modules" / "resources.bicep").is_file()
    assert (INFRA / "modules" / "secret.bicep").is_file()


def test_every_setting_the_app_requires_is_set(resources):
    names = set(app_settings(resources))
    _, required = settings_read_by_the_app()
    assert required == {"LOOP_API_KEY", "LOOP_SUBSCRIPTION_KEY"}
    missing = (required | binding_settings() | {"BLOB_TRIGGER_SOURCE"}) - names
    assert not missing, f"the template does not set {sorted(missing)}"
    assert "AzureWebJobsStorage__accountName" in names


def test_every_setting_the_template_sets_is_read_by_someone(resources):
    read, _ = settings_read_by_the_app()
    unknown = set(app_settings(resources)) - read - binding_settings() - PLATFORM_SETTINGS - {"BLOB_TRIGGER_SOURCE"}
    assert not unknown, f"set by the template, read by nobody (a typo?): {sorted(unknown)}"


def test_the_sampling_settings_are_the_same_on_azure_and_locally(resources):
    """The distro's sampler is a decision, the same in the template, local.settings.sample.json and
    a local run's defaults (shared/platform/observability.py), never its default of 5 traces a second."""
    from local.settings import LOCAL_DEFAULTS  # noqa: PLC0415

    sample = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    settings = app_settings(resources)
    for name, value in observability.TRACES_SAMPLER_SETTINGS.items():
        assert (settings.get(name), sample.get(name), LOCAL_DEFAULTS.get(name)) == (value, value, value), name


def test_flex_consumption_gets_no_worker_runtime_setting(resources):
    """On Flex Consumption the runtime is in functionAppConfig; the setting is refused there."""
    assert "FUNCTIONS_WORKER_RUNTIME" not in app_settings(resources)
    runtime = body(resources["resources"]["app"])["properties"]["functionAppConfig"]["runtime"]
    assert runtime == {"name": "python", "version": "3.11"}


def test_the_trigger_source_is_event_grid_and_the_app_accepts_it(resources):
    value = app_settings(resources)["BLOB_TRIGGER_SOURCE"]
    assert blob_trigger.trigger_source(value) == func.BlobSource.EVENT_GRID


def resolve(value: Any, resources: dict[str, Any], main: dict[str, Any]) -> str:
    """A setting's value as the app would see it: variables and parameter defaults (the module's,
    else main.bicep's) substituted, `${a.b}` interpolations and other expressions kept as tokens."""
    if not isinstance(value, str):
        return "expr-" + re.sub(r"\W+", "-", json.dumps(value, sort_keys=True)).strip("-")[:60]
    for template in (resources, main):
        if value in template["variables"]:
            return str(template["variables"][value]["value"])
        if value in template["parameters"] and template["parameters"][value]["default"] is not None:
            return str(template["parameters"][value]["default"])
    return re.sub(r"\$\{([\w.]+)\}", lambda m: resolve(m.group(1), resources, main).replace(".", "-"), value)


def template_environment(resources: dict[str, Any], main: dict[str, Any]) -> dict[str, str]:
    """The app settings as the app would see them once deployed (Key Vault references unresolved)."""
    return {name: resolve(value, resources, main) for name, value in app_settings(resources).items()}


def test_identity_connection_names_are_the_ones_the_host_and_the_extension_read(resources, main, monkeypatch):
    env = template_environment(resources, main)
    connection = next(
        binding["connection"] for function in registered_functions(function_app.app)
        for binding in json.loads(function.get_function_json())["bindings"] if binding["type"] == "blobTrigger"
    )
    assert connection == "AzureWebJobsStorage"
    assert env[f"{connection}__credential"] == "managedidentity"  # the host: user-assigned identity
    for name in list(os.environ):
        if name.startswith(connection):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # The blob extension's own functions, as they run on Azure for the blob trigger's argument.
    url = blob_extension.get_connection_string(connection)
    assert url == f"https://{env['AzureWebJobsStorage__accountName']}.blob.core.windows.net"
    assert blob_extension.using_user_managed_identity(connection)
    assert env[f"{connection}__clientId"] == env["AZURE_CLIENT_ID"]


def test_the_app_reads_the_template_settings_and_refuses_unresolved_secrets(resources, main):
    env = template_environment(resources, main)
    with pytest.raises(SettingsError) as caught:
        load_settings(env)
    message = str(caught.value)
    for name, secret in SECRET_SETTINGS.items():
        assert f"{name} is an unresolved Key Vault reference (secret {secret} in vault vault-name)" in message
    resolved = {**env, "LOOP_API_KEY": "k1:s1", "LOOP_SUBSCRIPTION_KEY": "sub1"}
    settings = load_settings(resolved)
    assert settings.storage_account_name == env["AzureWebJobsStorage__accountName"]
    assert settings.container == "api-import-ecrit"
    assert settings.loop_base_url == "https://api.cegid.com/loop-api-publiques"
    assert (settings.ledger_table, settings.dossier_table) == ("fecimports", "fecdossiers")


def test_loop_keys_are_versionless_key_vault_references_to_the_named_secrets(resources):
    settings = app_settings(resources)
    for name, secret in SECRET_SETTINGS.items():
        match = re.fullmatch(r"@Microsoft\.KeyVault\(VaultName=\$\{vault\.name\};SecretName=\$\{(\w+)\}\)", settings[name])
        assert match, settings[name]
        assert literal(resources, match.group(1)) == secret


def test_secrets_are_written_only_when_a_value_is_given(resources):
    secrets = {name: module for name, module in resources["modules"].items() if module["detail"]["path"] == "secret.bicep"}
    assert len(secrets) == len(SECRET_SETTINGS)
    for module in secrets.values():
        condition = module["config"]["condition"]["operator"]
        assert condition["type"] == "not"
        tested = condition["operands"]["bool_value"]["function"]
        assert tested["type"] == "empty"
        value = body(module)["params"]["value"]
        assert tested["parameters"]["item_to_test"] == value
        assert {"type": "secure"} in resources["parameters"][value]["decorators"]
    assert not [r for r in resources["resources"].values() if r["type"] == "Microsoft.KeyVault/vaults/secrets"]
    secret_module = parse(INFRA / "modules" / "secret.bicep")
    assert {"type": "secure"} in secret_module["parameters"]["value"]["decorators"]


def test_no_secret_value_is_written_in_the_templates(main, resources):
    for template in (main, resources, parse(INFRA / "modules" / "secret.bicep")):
        for name, parameter in template["parameters"].items():
            if {"type": "secure"} in parameter["decorators"]:
                assert parameter["default"] in (None, ""), f"secure parameter {name} has a default"
    text = "\n".join(path.read_text() for path in INFRA.rglob("*.bicep"))
    text += (INFRA / "main.parameters.json").read_text()
    for pattern in (r"AccountKey=", r"[?&]sig=", r"set-me", r"(?<![\w/])[A-Za-z0-9+]{40,}={0,2}(?![\w/])"):
        assert not re.search(pattern, text), pattern
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert parameters["loopApiKey"]["value"] == "${LOOP_API_KEY=}"
    assert parameters["loopSubscriptionKey"]["value"] == "${LOOP_SUBSCRIPTION_KEY=}"


def test_the_app_depends_on_its_role_assignments(resources):
    depends = set(body(resources["resources"]["app"])["dependsOn"])
    app_roles = {
        name for name, resource in resources["resources"].items()
        if resource["type"] == "Microsoft.Authorization/roleAssignments"
        and "identity" in json.dumps(body(resource)["properties"]["principalId"])
    }
    assert app_roles == {"storageRoles", "vaultRole", "monitoringRole"}
    assert app_roles <= depends


def role_of(resources: dict[str, Any], resource: dict[str, Any]) -> set[str]:
    """The role names a role assignment (or a loop of them) grants."""
    text = json.dumps(resource)
    return {role for role in ROLE_IDS if f'"{role}"' in text}


def test_role_ids_are_the_built_in_ones(resources):
    assert literal(resources, "roles") == ROLE_IDS


def test_the_deploying_principal_operates_and_uploaders_only_upload(resources, main):
    assignments = resources["resources"]
    assert role_of(resources, assignments["operatorVaultRole"]) == {"keyVaultSecretsOfficer"}
    assert body(assignments["operatorVaultRole"])["scope"] == "vault"
    assert role_of(resources, assignments["operatorStorageRoles"]) == {
        "storageBlobDataContributor", "storageTableDataContributor"}
    for name in ("operatorVaultRole", "operatorStorageRoles"):
        assert "principalId" in json.dumps(assignments[name]["config"]["condition"])
    uploaders = assignments["uploaderRoles"]
    assert uploaders["config"]["loop_type"]["detail"]["array_name"] == "uploaderPrincipalIds"
    assert body(uploaders)["scope"] == "importContainer"
    assert role_of(resources, uploaders) == {"storageBlobDataContributor"}
    assert body(resources["resources"]["importContainer"])["name"] == "importContainerName"
    assert resources["parameters"]["importContainerName"]["default"] == "api-import-ecrit"
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert parameters["principalId"]["value"] == "${AZURE_PRINCIPAL_ID=}"
    assert "uploaderPrincipalIds" in main["parameters"]


def test_uploaders_read_the_reports_container_and_the_app_is_told_its_name(resources):
    assignments = resources["resources"]
    readers = assignments["uploaderReportRoles"]
    assert readers["config"]["loop_type"]["detail"]["array_name"] == "uploaderPrincipalIds"
    assert body(readers)["scope"] == "reportsContainer"
    assert role_of(resources, readers) == {"storageBlobDataReader"}
    assert body(assignments["reportsContainer"])["name"] == "reportsContainerName"
    assert resources["parameters"]["reportsContainerName"]["default"] == "api-import-ecrit-reports"
    assert app_settings(resources)["REPORTS_CONTAINER"] == "reportsContainerName"


def test_the_hooks_wait_for_the_key_and_name_the_subscription():
    posix = (INFRA / "hooks" / "postdeploy.sh").read_text()
    windows = (INFRA / "hooks" / "postdeploy.ps1").read_text()
    for script in (posix, windows):
        assert script.count("--subscription") >= 2
        assert "systemKeys.blobs_extension" in script
        assert "Host.Functions.fec_blob_trigger" in script
    assert 'while [ "$attempt" -le "$attempts" ]' in posix
    assert '[ -n "$key" ] && break' in posix
    assert "for ($attempt = 1; $attempt -le $attempts; $attempt++)" in windows
    azure_yaml = (ROOT / "azure.yaml").read_text()
    assert "./infra/hooks/postdeploy.sh" in azure_yaml
    assert "./infra/hooks/postdeploy.ps1" in azure_yaml


def lifecycle_rules(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {rule["name"]: rule for rule in body(resources["resources"]["lifecycle"])["properties"]["policy"]["rules"]}


def test_the_retention_is_the_apps_and_the_reports_containers_keep_to_it(resources, main):
    """LEDGER_RETENTION_DAYS is set from one parameter, whose default and floor are the app's; the
    reports containers' lifecycle rule deletes their blobs after those days; the purge's schedule is set."""
    from shared.platform.settings import DEFAULT_RETENTION_DAYS, MINIMUM_RETENTION_DAYS  # noqa: PLC0415

    settings = app_settings(resources)
    assert settings["LEDGER_RETENTION_DAYS"] == "${ledgerRetentionDays}"
    assert settings["LEDGER_PURGE_SCHEDULE"] == "ledgerPurgeSchedule"
    for template in (resources, main):
        parameter = template["parameters"]["ledgerRetentionDays"]
        (minimum,) = [d["argument"] for d in parameter["decorators"] if d["type"] == "min_value"]
        assert (parameter["default"], minimum) == (DEFAULT_RETENTION_DAYS, MINIMUM_RETENTION_DAYS)
    assert body(main["modules"]["resources"])["params"]["ledgerRetentionDays"] == "ledgerRetentionDays"
    env = {**template_environment(resources, main), "LOOP_API_KEY": "k1:s1", "LOOP_SUBSCRIPTION_KEY": "sub1"}
    assert load_settings(env).ledger_retention_days == DEFAULT_RETENTION_DAYS
    rule = lifecycle_rules(resources)["delete-old-reports"]
    assert rule["enabled"] is True
    definition = rule["definition"]
    assert sorted(definition["filters"]["prefixMatch"]) == ["${reportContainerName}/", "${reportsContainerName}/"]
    assert definition["actions"] == {"baseBlob": {"delete": {"daysAfterModificationGreaterThan": "ledgerRetentionDays"}}}


def test_completed_files_are_deleted_by_their_outcome_tag_only_when_asked(resources, main):
    """Optional (off by default): a dropped file tagged fecimport=completed (shared/flows/outcome_tags.py)
    goes completedFileRetentionDays after it was dropped, with its snapshots; nothing else in the container."""
    rule = lifecycle_rules(resources)["delete-completed-files"]
    assert rule["enabled"] == "deleteCompletedFiles"
    for template in (resources, main):
        assert template["parameters"]["deleteCompletedFiles"]["default"] is False
    filters = rule["definition"]["filters"]
    assert filters["prefixMatch"] == ["${importContainerName}/"]
    assert filters["blobIndexMatch"] == [{"name": "fecimport", "op": "==", "value": "completed"}]
    assert rule["definition"]["actions"] == {
        "baseBlob": {"delete": {"daysAfterModificationGreaterThan": "completedFileRetentionDays"}},
        "snapshot": {"delete": {"daysAfterCreationGreaterThan": "completedFileRetentionDays"}},
    }
    params = body(main["modules"]["resources"])["params"]
    assert (params["deleteCompletedFiles"], params["completedFileRetentionDays"]) == (
        "deleteCompletedFiles", "completedFileRetentionDays")


def test_old_snapshots_are_deleted_but_never_before_a_sas_url_on_them_expires(resources):
    """Each import snapshots its version; the lifecycle rule deletes snapshots (only snapshots, only in
    the import container) after snapshotRetentionDays, which cannot be set below the longest SAS."""
    from shared.platform.settings import MAXIMUM_SAS_HOURS  # noqa: PLC0415

    rule = lifecycle_rules(resources)["delete-old-import-snapshots"]
    assert rule["enabled"] is True
    assert rule["type"] == "Lifecycle"
    definition = rule["definition"]
    assert definition["filters"]["prefixMatch"] == ["${importContainerName}/"]
    assert definition["actions"] == {"snapshot": {"delete": {"daysAfterCreationGreaterThan": "snapshotRetentionDays"}}}
    parameter = resources["parameters"]["snapshotRetentionDays"]
    (minimum,) = [d["argument"] for d in parameter["decorators"] if d["type"] == "min_value"]
    assert minimum * 24 > MAXIMUM_SAS_HOURS
    assert parameter["default"] >= minimum
