"""Settings, read once from the environment (app settings on Azure, local.settings.json locally)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_CONTAINER = "api-import-ecrit"
# Where each import's readable report lands, for whoever dropped the file (shared/flows/verdict_reports.py).
DEFAULT_REPORTS_CONTAINER = "api-import-ecrit-reports"
_CONTAINER_NAME = re.compile(r"^(?=.{3,63}$)[a-z0-9]+(-[a-z0-9]+)*$")
DEFAULT_LOOP_BASE_URL = "https://api.cegid.com/loop-api-publiques"
DEFAULT_STATUS_PATH = "/getImportStatus"
# How Loop gets each file (README, "Transfer mode"): `sas`, Loop downloads it from our storage through
# a read-only SAS URL; `deposit`, the app uploads it to a URL Loop gives (getFileUrlDeposit).
TRANSFER_MODES = ("sas", "deposit")
LOOP_MINIMUM_SAS_HOURS = 24
# A user delegation key lives at most 7 days from its start, and the SAS starts 15 minutes in the
# past (clock skew): the longest SAS the app can sign on Azure ends an hour short of 7 days.
MAXIMUM_SAS_HOURS = 24 * 7 - 1
MIB = 1024 * 1024
# Final imports are kept at least this long (issue #26): a month for the people who dropped them to
# read their reports and for operators to look into a failure.
MINIMUM_RETENTION_DAYS = 30
DEFAULT_RETENTION_DAYS = 400
LOCAL_SETTINGS_FILE = "local.settings.json"
# The language of everything a dropper reads (reports, verdicts, rule messages; shared/language/),
# and the time zone their dates are shown in. Logs and events stay English.
REPORT_LANGUAGES = ("fr", "en")
DEFAULT_REPORT_LANGUAGE = "fr"
DEFAULT_REPORT_TIMEZONE = "Europe/Paris"

# The Key Vault secret behind each secret setting on Azure (infra/modules/resources.bicep).
SECRET_SETTINGS = {"LOOP_API_KEY": "loop-api-key", "LOOP_SUBSCRIPTION_KEY": "loop-subscription-key"}
# Values that hold the place of a key nobody has set yet (compared case-insensitively, on each side
# of the key:secret colon): they would pass every format check and fail at Loop with 401s.
PLACEHOLDERS = frozenset({
    "set-me", "setme", "set_me", "change-me", "changeme", "change_me", "placeholder", "todo", "tbd", "xxx", "...",
})
_PLACEHOLDER_SHAPE = re.compile(r"^(<[^>]*>|\$\{[^}]*\}|x+)$", re.IGNORECASE)  # <your key>, ${LOOP_API_KEY}, xxxx
# App Service leaves a Key Vault reference it could not resolve in the setting, as text.
_KEY_VAULT_REFERENCE = re.compile(r"^\s*@Microsoft\.KeyVault\((?P<body>.*)\)\s*$", re.IGNORECASE | re.DOTALL)


class SettingsError(ValueError):
    """One or more settings are missing or wrong; the message names each of them."""


@dataclass(frozen=True)
class Settings:
    """Everything the pipeline needs, validated. Secrets are excluded from repr."""

    storage_connection_string: str | None
    storage_account_name: str | None
    blob_service_uri: str | None
    table_service_uri: str | None
    queue_service_uri: str | None
    container: str
    loop_base_url: str
    loop_api_key: str
    loop_subscription_key: str
    loop_status_path: str
    loop_transfer_mode: str
    sas_ttl_hours: int
    ledger_table: str
    dossier_table: str
    report_container: str
    reports_container: str
    loop_connect_timeout: float
    loop_read_timeout: float
    loop_retries: int
    poll_concurrency: int
    submit_timeout_minutes: int
    stale_after_hours: int
    sas_expiry_warning_hours: int
    duplicate_window_hours: int
    claim_lease_seconds: int
    backoff_base_seconds: float
    backoff_factor: float
    backoff_max_seconds: float
    backoff_jitter: float
    submit_max_attempts: int
    download_chunk_bytes: int
    status_queue: str
    status_first_check_seconds: int
    status_step_seconds: int
    status_max_interval_seconds: int
    status_check_lease_seconds: int
    status_tick_budget_seconds: int
    status_tick_max_messages: int
    status_gauge_interval_seconds: int
    report_language: str
    report_timezone: str
    ledger_retention_days: int

    def __repr__(self) -> str:
        return (
            f"Settings(container={self.container!r}, loop_base_url={self.loop_base_url!r}, "
            f"ledger_table={self.ledger_table!r}, sas_ttl_hours={self.sas_ttl_hours})"
        )


class _Reader:
    """Reads typed values and collects every problem, so one error names them all."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def choice(self, name: str, choices: tuple[str, ...], meaning: str) -> str:
        """One of `choices` (any case; the first is the default); another value is a problem naming them."""
        value = self.text(name, choices[0]).lower()
        if value not in choices:
            self.problems.append(f"{name} must be one of {', '.join(choices)}, got {value!r}: {meaning}")
            return choices[0]
        return value

    def text(self, name: str, default: str | None = None, *, required: bool = False) -> str:
        value = (self.env.get(name) or "").strip()
        if value:
            return value
        if required:
            self.problems.append(f"{name} is not set")
        return default or ""

    def integer(self, name: str, default: int, minimum: int, maximum: int | None = None) -> int:
        raw = (self.env.get(name) or "").strip()
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            self.problems.append(f"{name} must be a whole number, got {raw!r}")
            return default
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
            self.problems.append(f"{name} must be {bound}, got {value}")
        return value

    def number(self, name: str, default: float, minimum: float, maximum: float) -> float:
        raw = (self.env.get(name) or "").strip()
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            self.problems.append(f"{name} must be a number, got {raw!r}")
            return default
        if not minimum <= value <= maximum:
            self.problems.append(f"{name} must be between {minimum:g} and {maximum:g}, got {raw}")
            return default
        return value

    def seconds(self, name: str, default: float) -> float:
        raw = (self.env.get(name) or "").strip()
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if value <= 0:
            self.problems.append(f"{name} must be a positive number of seconds, got {raw!r}")
            return default
        return value


def _storage_problems(connection_string: str, account_name: str, blob_uri: str) -> list[str]:
    if connection_string or account_name or blob_uri:
        return []
    return [
        "AzureWebJobsStorage is not set: give a connection string (UseDevelopmentStorage=true for "
        "Azurite) or AzureWebJobsStorage__accountName for a managed identity"
    ]


def _reference_target(body: str) -> str:
    """`secret loop-api-key in vault kv-x` from a reference's body (names only, never a value)."""
    parts = dict(
        (key.strip().lower(), value.strip()) for key, _, value in (p.partition("=") for p in body.split(";"))
    )
    uri = re.match(r"https://(?P<vault>[^./]+)\.vault\.[^/]+/secrets/(?P<secret>[^/]+)", parts.get("secreturi", ""))
    vault = parts.get("vaultname") or (uri.group("vault") if uri else "")
    secret = parts.get("secretname") or (uri.group("secret") if uri else "")
    return f"secret {secret or '?'} in vault {vault or '?'}"


def _how_to_set(name: str) -> str:
    secret = SECRET_SETTINGS.get(name, name.lower().replace("_", "-"))
    return (
        f"set it with `az keyvault secret set --vault-name <AZURE_KEY_VAULT_NAME> --name {secret} --value ...` "
        f"(Key Vault Secrets Officer; infra/README.md), or locally {name} in {LOCAL_SETTINGS_FILE}"
    )


def _is_placeholder(part: str) -> bool:
    text = part.strip().lower()
    return text in PLACEHOLDERS or bool(_PLACEHOLDER_SHAPE.match(text))


def secret_problem(name: str, value: str) -> str | None:
    """Why a secret setting's value cannot be a real key (placeholder, unresolved Key Vault
    reference), naming the secret to set and how; None when it may be real. Never quotes the value."""
    reference = _KEY_VAULT_REFERENCE.match(value)
    if reference:
        return (
            f"{name} is an unresolved Key Vault reference ({_reference_target(reference.group('body'))}): "
            "the app could not read the secret. Check the secret exists and is enabled, and that the app's "
            f"identity has Key Vault Secrets User on the vault; if the secret is missing, {_how_to_set(name)}; "
            "then restart the app"
        )
    if any(_is_placeholder(part) for part in value.split(":")):
        return f"{name} holds a placeholder, not a Loop key: {_how_to_set(name)}"
    return None


def environment_with_local_settings(root: Path | None = None, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment completed by `<root>/local.settings.json` ("Values") when it exists, as Core
    Tools does: a variable set in the environment wins over the file. The one place that reads the file
    (the local runner and the operator CLI both call it); root defaults to the current directory."""
    environment = dict(os.environ if env is None else env)
    settings_file = (root or Path.cwd()) / LOCAL_SETTINGS_FILE
    if not settings_file.exists():
        return environment
    try:
        values = json.loads(settings_file.read_text(encoding="utf-8")).get("Values", {})
    except (ValueError, AttributeError) as error:
        raise SettingsError(f"{settings_file} is not valid JSON with a \"Values\" object: {error}") from None
    return {**{key: str(value) for key, value in values.items()}, **environment}


def _sas_ttl_hours(read: _Reader) -> int:
    raw = (read.env.get("SAS_TTL_HOURS") or "").strip()
    value = read.integer("SAS_TTL_HOURS", LOOP_MINIMUM_SAS_HOURS, LOOP_MINIMUM_SAS_HOURS)
    if raw and value > MAXIMUM_SAS_HOURS:
        read.problems.append(
            f"SAS_TTL_HOURS must be at most {MAXIMUM_SAS_HOURS}, got {value}: on Azure the SAS is signed "
            "with a user delegation key, which lives at most 7 days from a start 15 minutes in the past"
        )
        return MAXIMUM_SAS_HOURS
    return value


def _transfer_mode(read: _Reader) -> str:
    return read.choice("LOOP_TRANSFER_MODE", TRANSFER_MODES, "sas (Loop downloads from a SAS URL on this "
                       "storage account) or deposit (the app uploads to Loop's deposit URL)")


def _report_language(read: _Reader) -> str:
    return read.choice("REPORT_LANGUAGE", REPORT_LANGUAGES,
                       "the language of the reports next to the dropped files (fr French, en English)")


def _report_timezone(read: _Reader) -> str:
    value = read.text("REPORT_TIMEZONE", DEFAULT_REPORT_TIMEZONE)
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        read.problems.append(f"REPORT_TIMEZONE must be an IANA time zone such as Europe/Paris, got {value!r}")
        return DEFAULT_REPORT_TIMEZONE
    return value


def _retention_days(read: _Reader) -> int:
    raw = (read.env.get("LEDGER_RETENTION_DAYS") or "").strip()
    try:
        value = int(raw) if raw else DEFAULT_RETENTION_DAYS
    except ValueError:
        value = None
    if value is None or value < MINIMUM_RETENTION_DAYS:
        read.problems.append(
            f"LEDGER_RETENTION_DAYS must be a whole number of days, at least {MINIMUM_RETENTION_DAYS}, got {raw!r}: "
            "final imports, their reports and index rows are deleted that many days after their last change"
        )
        return DEFAULT_RETENTION_DAYS
    return value


def _reports_container_problems(settings: Settings) -> list[str]:
    """REPORTS_CONTAINER is a valid container name of its own: the trigger must never see a report
    (its container is not the watched one) and the internal validation reports stay apart."""
    name = settings.reports_container
    if not _CONTAINER_NAME.match(name):
        return [f"REPORTS_CONTAINER must be a container name (3-63 lowercase letters, digits and single hyphens), "
                f"got {name!r}"]
    if name == settings.container:
        return ["REPORTS_CONTAINER must differ from FEC_IMPORT_CONTAINER (the trigger would fire on every report)"]
    if name == settings.report_container:
        return ["REPORTS_CONTAINER must differ from IMPORT_REPORT_CONTAINER (the internal validation reports)"]
    return []


def load_settings(env: Mapping[str, str] | None = None, *, require_loop: bool = True) -> Settings:
    """Read and validate the settings; raise SettingsError naming every missing or bad one.

    require_loop=False lets read-only operator commands run without the Loop keys.
    """
    read = _Reader(os.environ if env is None else env)
    connection_string = read.text("AzureWebJobsStorage")
    account_name = read.text("AzureWebJobsStorage__accountName")
    blob_uri = read.text("AzureWebJobsStorage__blobServiceUri")
    table_uri = read.text("AzureWebJobsStorage__tableServiceUri")
    queue_uri = read.text("AzureWebJobsStorage__queueServiceUri")
    read.problems += _storage_problems(connection_string, account_name, blob_uri)

    api_key = read.text("LOOP_API_KEY", required=require_loop)
    subscription_key = read.text("LOOP_SUBSCRIPTION_KEY", required=require_loop)
    secret_problems = [
        problem for name, value in (("LOOP_API_KEY", api_key), ("LOOP_SUBSCRIPTION_KEY", subscription_key))
        if require_loop and value and (problem := secret_problem(name, value))
    ]
    read.problems += secret_problems
    if api_key and ":" not in api_key and not secret_problems:
        read.problems.append("LOOP_API_KEY must have the form key:secret (as generated on CegidLife)")
    base_url = read.text("LOOP_API_BASE_URL", DEFAULT_LOOP_BASE_URL).rstrip("/")
    if not base_url.startswith(("https://", "http://")):
        read.problems.append(f"LOOP_API_BASE_URL must be an http(s) URL, got {base_url!r}")
    status_path = read.text("LOOP_STATUS_PATH", DEFAULT_STATUS_PATH)
    if not status_path.startswith("/"):
        status_path = "/" + status_path

    first_check_seconds = read.integer("STATUS_POLL_FIRST_SECONDS", 30, 0, 3_600)
    settings = Settings(
        storage_connection_string=connection_string or None,
        storage_account_name=account_name or None,
        blob_service_uri=blob_uri or None,
        table_service_uri=table_uri or None,
        queue_service_uri=queue_uri or None,
        container=read.text("FEC_IMPORT_CONTAINER", DEFAULT_CONTAINER),
        loop_base_url=base_url,
        loop_api_key=api_key,
        loop_subscription_key=subscription_key,
        loop_status_path=status_path,
        loop_transfer_mode=_transfer_mode(read),
        sas_ttl_hours=_sas_ttl_hours(read),
        ledger_table=read.text("IMPORT_LEDGER_TABLE", "fecimports"),
        dossier_table=read.text("DOSSIER_MAP_TABLE", "fecdossiers"),
        report_container=read.text("IMPORT_REPORT_CONTAINER", "fec-import-reports"),
        reports_container=read.text("REPORTS_CONTAINER", DEFAULT_REPORTS_CONTAINER),
        loop_connect_timeout=read.seconds("LOOP_CONNECT_TIMEOUT_SECONDS", 10.0),
        loop_read_timeout=read.seconds("LOOP_READ_TIMEOUT_SECONDS", 60.0),
        loop_retries=read.integer("LOOP_MAX_RETRIES", 4, 0, 10),
        poll_concurrency=read.integer("STATUS_POLL_CONCURRENCY", 8, 1, 64),
        submit_timeout_minutes=read.integer("SUBMIT_TIMEOUT_MINUTES", 15, 1),
        stale_after_hours=read.integer("IMPORT_STALE_AFTER_HOURS", 12, 1),
        sas_expiry_warning_hours=read.integer("SAS_EXPIRY_WARNING_HOURS", 2, 0),
        duplicate_window_hours=read.integer("DUPLICATE_WINDOW_HOURS", 72, 0),
        claim_lease_seconds=read.integer("CLAIM_LEASE_SECONDS", 300, 1),
        backoff_base_seconds=read.number("RETRY_BACKOFF_BASE_SECONDS", 60.0, 1.0, 86_400.0),
        backoff_factor=read.number("RETRY_BACKOFF_FACTOR", 2.0, 1.0, 10.0),
        backoff_max_seconds=read.number("RETRY_BACKOFF_MAX_SECONDS", 3_600.0, 1.0, 7 * 86_400.0),
        backoff_jitter=read.number("RETRY_BACKOFF_JITTER", 0.1, 0.0, 1.0),
        submit_max_attempts=read.integer("SUBMIT_MAX_ATTEMPTS", 8, 1, 100),
        download_chunk_bytes=read.integer("BLOB_DOWNLOAD_CHUNK_BYTES", 4 * MIB, 64 * 1024, 32 * MIB),
        status_queue=read.text("STATUS_CHECK_QUEUE", "fec-status-checks"),
        status_first_check_seconds=first_check_seconds,
        status_step_seconds=read.integer("STATUS_POLL_STEP_SECONDS", max(first_check_seconds, 1), 1, 3_600),
        status_max_interval_seconds=read.integer("STATUS_POLL_MAX_INTERVAL_SECONDS", 120, 1, 86_400),
        status_check_lease_seconds=read.integer("STATUS_CHECK_LEASE_SECONDS", 300, 10, 86_400),
        status_tick_budget_seconds=read.integer("STATUS_TICK_BUDGET_SECONDS", 20, 1, 600),
        status_tick_max_messages=read.integer("STATUS_TICK_MAX_MESSAGES", 5_000, 1, 100_000),
        status_gauge_interval_seconds=read.integer("STATUS_GAUGE_INTERVAL_SECONDS", 600, 0, 86_400),
        report_language=_report_language(read),
        report_timezone=_report_timezone(read),
        ledger_retention_days=_retention_days(read),
    )
    if settings.container == settings.report_container:
        read.problems.append("IMPORT_REPORT_CONTAINER must differ from FEC_IMPORT_CONTAINER")
    read.problems += _reports_container_problems(settings)
    if read.problems:
        raise SettingsError("Invalid settings: " + "; ".join(read.problems))
    return settings
