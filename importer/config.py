"""Configuration: one TOML file, every key overridable from the environment.

Top-level keys map to `STAMDATA_<KEY>` (e.g. `production_url` -> `STAMDATA_PRODUCTION_URL`); a register's
section `[registers.<name>]` maps to `STAMDATA_<NAME>_<KEY>` (e.g. `STAMDATA_AUTORISATION_REDUCTION_GUARD`).
Environment beats file beats default, so an operator can change one value without editing the file.
"""

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from sqlalchemy.engine import make_url

from importer.errors import UsageError

CONFIG_ENV = "STAMDATA_CONFIG"

DEFAULTS: dict[str, Any] = {
    "production_url": "sqlite:///var/production.sqlite",
    "preflight_url": "sqlite:///var/preflight.sqlite",
    "inbox": "inbox",
    "listen": "127.0.0.1:8080",
    "log_level": "info",
    # The façades' read-only account; empty means the production URL (see README, "Façades"). Several URLs,
    # comma-separated (or a TOML list), spread the façades over replicas (README, "Beyond one machine").
    "facade_url": "",
    "state_dir": "var/state",  # the importer's own working state (snapshots of the last import), not data
    # The account of the services that write next to the façades (audit rows, test data, notification pulls):
    # the primary, never the façades' read-only account; empty means the production URL (README, "Access").
    "service_url": "",
    # TLS for the HTTP server: certificate and key (PEM); with a client CA, clients may present a certificate
    # whose subject maps to a client (mutual TLS) instead of a bearer token. Empty: plain HTTP.
    "tls_certificate": "",
    "tls_key": "",
    "tls_client_ca": "",
    # PEM file(s), comma-separated, of the STS whose signature makes a DGWS ID card valid for the SOAP services.
    # Empty: SOAP calls need a client credential like any other request.
    "sts_certificates": "",
}

# The daemon's own knobs (`stamdata-importer run`); typed, so environment overrides are coerced to these types.
DAEMON_DEFAULTS: dict[str, Any] = {
    "watch_mode": "native",  # native (inotify) | polling (network filesystems) | off (rescans only)
    "rescan_interval_s": 5.0,  # the rescan is the truth; file-system events only wake it early
    "stop_timeout_s": 30.0,  # how long SIGTERM waits for a running import before abandoning it
    "retry_initial_s": 5.0,  # first wait after an infrastructure error, doubled per failure
    "retry_max_s": 60.0,  # an attempt is cheap; an operator who fixed the database should not wait long
    "lock_wait_s": 600.0,  # how long a CLI import waits for the register lock held by another importer
    # How long one database round trip may take before the connection counts as lost and the import is retried:
    # a frozen server or a half-open TCP connection would otherwise stall the register silently. It must exceed
    # the longest statement (a million-row LOAD DATA takes under a minute on a server sized as README says).
    "db_timeout_s": 300.0,
    "status_timeout_s": 5.0,  # /status and /metrics answer within about this, red if the database did not
    "archive_retention_days": 90.0,  # processed/ entries older than this are deleted; 0 keeps them forever
    # Each client's token bucket: requests per second on average, and the burst it may spend at once.
    "rate_limit_per_s": 20.0,
    "rate_limit_burst": 100.0,
    # How long the façades use a client found by its credentials before reading it again: the bound on how late a
    # revocation takes effect (0: read on every request).
    "credential_cache_s": 2.0,
    # Processes answering HTTP under `serve` (each with its own connections; `run` always answers in its own process).
    "http_workers": 1,
    "dgws_min_security_level": 3,  # the lowest DGWS security level (ID card authentication level) accepted
    # The façades refuse to start with a database account that can write, unless this says it is intended.
    "allow_writable_facade": False,
    # Dump, restore and reset of test persons (FORMATS.md §6): only in test environments, never by default.
    "testdata_enabled": False,
    # Beyond one machine (README): the importer writes a heartbeat row into production this often (and after every
    # import); a façade whose database's newest heartbeat is older than max_lag_s answers /status with 503 and
    # reads from another of its databases where it has one (0: report the lag, never refuse).
    "heartbeat_interval_s": 60.0,
    "max_lag_s": 300.0,
    # A register lock's database session times out after this long without a word from its holder (a host that
    # hangs), so another importer host takes the register over within about this plus its rescan interval.
    "takeover_s": 30.0,
}

# What every register may tune, whatever it is; a register adds its own keys and may change these defaults.
REGISTER_DEFAULTS: dict[str, Any] = {
    "quiet_period_s": 10.0,
    "max_age_days": 0.0,
}


@dataclass(frozen=True)
class Settings:
    production_url: str
    preflight_url: str
    inbox: Path
    listen: str
    log_level: str
    state_dir: Path = Path("var/state")
    register_sections: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    environ: Mapping[str, str] = field(default_factory=dict)
    daemon: Mapping[str, Any] = field(default_factory=lambda: dict(DAEMON_DEFAULTS))
    facade_url: str = ""
    service_url: str = ""
    tls_certificate: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""
    sts_certificates: str = ""
    # Where each top-level value came from ("$STAMDATA_LISTEN", the file's path), for messages; "file" names
    # the configuration file itself.
    sources: Mapping[str, str] = field(default_factory=dict)

    @property
    def facade_database_url(self) -> str:
        """Where the read-only façades read: their own account if configured, else production."""
        return self.facade_url or self.production_url

    @property
    def facade_database_urls(self) -> list[str]:
        """Every database the façades may read from (a replica, or several to spread over), in the order given."""
        return split_urls(self.facade_database_url)

    @property
    def service_database_url(self) -> str:
        """Where the writing services write (audit, test data, notifications): their account, else production."""
        return self.service_url or self.production_url

    def for_register(self, name: str, defaults: Mapping[str, Any]) -> dict[str, Any]:
        """The effective settings of one register: its defaults, its TOML section, then the environment."""
        merged: dict[str, Any] = {**REGISTER_DEFAULTS, **defaults}
        section = self.register_sections.get(name, {})
        unknown = set(section) - set(merged)
        if unknown:
            raise UsageError(f"unknown setting(s) for register {name}: {', '.join(sorted(unknown))}")
        merged.update(section)
        prefix = f"STAMDATA_{name.upper()}_"
        for key, default in list(merged.items()):
            raw = self.environ.get(prefix + key.upper())
            if raw is not None:
                merged[key] = _coerce(prefix + key.upper(), raw, default)
        return merged


def _coerce(name: str, raw: str, like: Any) -> Any:
    """Environment values are text; give them the type of the default they replace."""
    try:
        if isinstance(like, bool):
            if raw.lower() in {"1", "true", "yes", "on"}:
                return True
            if raw.lower() in {"0", "false", "no", "off"}:
                return False
            raise ValueError(raw)
        if isinstance(like, int):
            return int(raw)
        if isinstance(like, float):
            return float(raw)
        if isinstance(like, list | tuple):
            return [item.strip() for item in raw.split(",") if item.strip()]
    except ValueError as error:
        kind = {"bool": "true or false", "int": "a whole number", "float": "a number"}.get(type(like).__name__,
                                                                                          type(like).__name__)
        raise UsageError(f"configuration: {name}={raw!r} (from the environment): must be {kind}") from error
    return raw


LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
WATCH_MODES = ("native", "polling", "off")
DATABASE_BACKENDS = ("sqlite", "mysql", "mariadb")
# Knobs that must be above zero (a zero interval or timeout would spin or disable the very thing it bounds).
POSITIVE = frozenset({"rescan_interval_s", "retry_initial_s", "retry_max_s", "db_timeout_s", "status_timeout_s",
                      "heartbeat_interval_s", "takeover_s", "http_workers"})
# Environment variables that are not settings (the configuration file's path; the test suite's own).
NOT_SETTINGS_PREFIXES = (CONFIG_ENV, "STAMDATA_TEST_")


class ConfigurationError(UsageError):
    """A setting is wrong: names the key, where its value came from, and the rule it breaks (exit 2)."""

    def __init__(self, key: str, value: Any, source: str, rule: str) -> None:
        shown = "" if value is None else f" = {value!r}"
        super().__init__(f"configuration: {key}{shown} (from {source}): {rule}")


def check_settings(settings: Settings) -> None:
    """Every top-level value at once, before anything starts: a bad value is exit 2 now, naming the key, its
    source and the rule, never a traceback after migrating, or a silent default."""
    where = settings.sources

    def fail(key: str, value: Any, rule: str) -> NoReturn:
        raise ConfigurationError(key, value, where.get(key, "the defaults"), rule)

    for key in ("production_url", "preflight_url", "facade_url", "service_url"):
        value = getattr(settings, key)
        if key in {"facade_url", "service_url"} and not value:
            continue
        for url in split_urls(value) if key == "facade_url" else [value]:
            try:
                backend = make_url(url).get_backend_name()
            except Exception:
                fail(key, value, "not a database URL (e.g. sqlite:///var/production.sqlite or "
                     "mysql+pymysql://user@host/db)" + ("; several are separated by commas" if key == "facade_url"
                                                         else ""))
            if backend not in DATABASE_BACKENDS:
                fail(key, value, f"unsupported database {backend!r}: use sqlite or mysql+pymysql")
    try:
        parse_listen(settings.listen)
    except ValueError as error:
        fail("listen", settings.listen, str(error))
    if settings.log_level.lower() not in LOG_LEVELS:
        fail("log_level", settings.log_level, f"must be one of {', '.join(LOG_LEVELS)}")
    for key in ("inbox", "state_dir"):
        if not str(getattr(settings, key)).strip() or str(getattr(settings, key)) == ".":
            fail(key, str(getattr(settings, key)), "must name a directory")
    daemon = settings.daemon
    if daemon["watch_mode"] not in WATCH_MODES:
        fail("watch_mode", daemon["watch_mode"], f"must be one of {', '.join(WATCH_MODES)}")
    for key, value in daemon.items():
        if key == "watch_mode":
            continue
        if isinstance(DAEMON_DEFAULTS[key], bool):
            if not isinstance(value, bool):
                fail(key, value, "must be true or false")
            continue
        if not isinstance(value, int | float) or isinstance(value, bool):
            fail(key, value, "must be a number")
        if value < 0 or (key in POSITIVE and value <= 0):
            fail(key, value, "must be greater than 0" if key in POSITIVE else "must not be negative")
    if daemon["http_workers"] not in range(1, 65):
        fail("http_workers", daemon["http_workers"], "must be a whole number from 1 to 64")
    if daemon["dgws_min_security_level"] not in range(1, 6):
        fail("dgws_min_security_level", daemon["dgws_min_security_level"], "must be a DGWS security level, 1 to 5")
    if bool(settings.tls_certificate) != bool(settings.tls_key):
        fail("tls_key" if settings.tls_certificate else "tls_certificate", None,
             "tls_certificate and tls_key go together")
    if settings.tls_client_ca and not settings.tls_certificate:
        fail("tls_client_ca", settings.tls_client_ca, "needs tls_certificate and tls_key (mutual TLS is TLS)")
    if daemon["retry_max_s"] < daemon["retry_initial_s"]:
        fail("retry_max_s", daemon["retry_max_s"], f"must not be below retry_initial_s ({daemon['retry_initial_s']})")
    if 0 < daemon["max_lag_s"] <= daemon["heartbeat_interval_s"]:
        fail("max_lag_s", daemon["max_lag_s"], f"must exceed heartbeat_interval_s "
             f"({daemon['heartbeat_interval_s']:g}): a database in step is up to one interval behind the newest "
             "heartbeat (0 turns the limit off)")
    if not 2 <= daemon["takeover_s"] <= 86_400:
        fail("takeover_s", daemon["takeover_s"], "must be from 2 to 86400 seconds (the lock session's wait_timeout)")


def check_registers(settings: Settings, registers: Mapping[str, Any]) -> list[str]:
    """Every register's section against what the register declares (`settings_defaults`): sections of registers
    that do not exist, keys it does not know and values of the wrong type are errors. Returns warnings about
    STAMDATA_* environment variables that set nothing (a misspelt name would otherwise go unnoticed)."""
    file = settings.sources.get("file", "the configuration file")
    if not isinstance(settings.register_sections, Mapping) or not all(
        isinstance(section, Mapping) for section in settings.register_sections.values()
    ):
        raise ConfigurationError("registers", None, file, "must be tables such as [registers.autorisation]")
    unknown = sorted(set(settings.register_sections) - set(registers))
    if unknown:
        raise ConfigurationError(f"[registers.{unknown[0]}]", None, file,
                                 f"no such register (known: {', '.join(sorted(registers))})")
    known_env = {f"STAMDATA_{key.upper()}" for key in (*DEFAULTS, *DAEMON_DEFAULTS)}
    for name, register in registers.items():
        defaults = {**REGISTER_DEFAULTS, **register.settings_defaults}
        section = settings.register_sections.get(name, {})
        misspelt = sorted(set(section) - set(defaults))
        if misspelt:
            raise ConfigurationError(f"registers.{name}.{misspelt[0]}", section[misspelt[0]], file,
                                     f"no such setting (known: {', '.join(sorted(defaults))})")
        effective = settings.for_register(name, register.settings_defaults)  # bad environment values
        known_env.update(f"STAMDATA_{name.upper()}_{key.upper()}" for key in defaults)
        # Types first (the register's own rules may rely on them), then the register's rules.
        typed = {key: _type_rule(effective[key], default) for key, default in defaults.items()}
        problems = {key: rule for key, rule in typed.items() if rule is not None}
        for key, rule in (problems or register.setting_problems(effective)).items():
            env = f"STAMDATA_{name.upper()}_{key.upper()}"
            source = f"${env}" if env in settings.environ else file if key in section else "the defaults"
            raise ConfigurationError(f"registers.{name}.{key}", effective[key], source, rule)
    return [f"environment variable {name} sets nothing (no such setting)" for name in sorted(settings.environ)
            if name.startswith("STAMDATA_") and name not in known_env and not name.startswith(NOT_SETTINGS_PREFIXES)]


def _type_rule(value: Any, like: Any) -> str | None:
    """Why `value` cannot stand where `like` is the default, or None."""
    if isinstance(like, bool):
        return None if isinstance(value, bool) else "must be true or false"
    if isinstance(like, int | float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "must be a number"
        if isinstance(like, int) and not isinstance(value, int):
            return "must be a whole number"
        return "must not be negative" if value < 0 else None
    if isinstance(like, list | tuple):
        return None if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value) else \
            "must be a list of strings"
    if isinstance(like, str):
        return None if isinstance(value, str) else "must be a string"
    return None


def split_urls(text: str) -> list[str]:
    """`facade_url` may name several databases, separated by commas (a comma inside a password is written %2C)."""
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_listen(listen: str) -> tuple[str, int]:
    """`host:port` (an IPv6 host in brackets) as the HTTP server binds it; ValueError naming the rule otherwise."""
    host, colon, port = listen.rpartition(":")
    if not colon or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError("must be host:port with a port from 1 to 65535 (e.g. 127.0.0.1:8080)")
    host = host.strip("[]")
    if not host or any(character.isspace() for character in host):
        raise ValueError("must be host:port with a host name or address (e.g. 127.0.0.1:8080)")
    return host, int(port)


def load_settings(config_file: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    env = dict(os.environ if environ is None else environ)
    if config_file is None and env.get(CONFIG_ENV):
        config_file = Path(env[CONFIG_ENV])
    document: dict[str, Any] = {}
    if config_file is not None:
        try:
            document = tomllib.loads(config_file.read_text(encoding="utf-8"))
        except FileNotFoundError as error:
            raise UsageError(f"configuration file {config_file} does not exist") from error
        except tomllib.TOMLDecodeError as error:
            raise UsageError(f"configuration file {config_file} is not valid TOML: {error}") from error
    sections = document.pop("registers", {})
    unknown = sorted(set(document) - set(DEFAULTS) - set(DAEMON_DEFAULTS))
    if unknown:
        raise ConfigurationError(unknown[0], document[unknown[0]], str(config_file),
                                 "no such setting (see ops/importer.toml for every key)")
    if isinstance(document.get("facade_url"), list) and all(isinstance(v, str) for v in document["facade_url"]):
        document["facade_url"] = ", ".join(document["facade_url"])  # a TOML list of replicas
    values = {**DEFAULTS, **DAEMON_DEFAULTS, **document}
    sources = {key: str(config_file) for key in document}
    if config_file is not None:
        sources["file"] = str(config_file)
    for key in DEFAULTS:
        override = env.get(f"STAMDATA_{key.upper()}")
        if override is not None:
            values[key], sources[key] = override, f"${f'STAMDATA_{key.upper()}'}"
    for key, default in DAEMON_DEFAULTS.items():
        override = env.get(f"STAMDATA_{key.upper()}")
        if override is not None:
            values[key] = _coerce(f"STAMDATA_{key.upper()}", override, default)
            sources[key] = f"$STAMDATA_{key.upper()}"
    for key in DEFAULTS:
        if not isinstance(values[key], str):
            raise ConfigurationError(key, values[key], sources.get(key, "the defaults"), "must be a string")
    settings = Settings(
        production_url=str(values["production_url"]),
        preflight_url=str(values["preflight_url"]),
        inbox=Path(values["inbox"]),
        listen=str(values["listen"]),
        log_level=str(values["log_level"]),
        state_dir=Path(values["state_dir"]),
        register_sections=sections,
        environ=env,
        daemon={key: values[key] for key in DAEMON_DEFAULTS},
        facade_url=str(values["facade_url"]),
        service_url=str(values["service_url"]),
        tls_certificate=str(values["tls_certificate"]),
        tls_key=str(values["tls_key"]),
        tls_client_ca=str(values["tls_client_ca"]),
        sts_certificates=str(values["sts_certificates"]),
        sources=sources,
    )
    check_settings(settings)
    return settings
