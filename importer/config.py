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
from typing import Any

from importer.errors import UsageError

CONFIG_ENV = "STAMDATA_CONFIG"

DEFAULTS: dict[str, Any] = {
    "production_url": "sqlite:///var/production.sqlite",
    "preflight_url": "sqlite:///var/preflight.sqlite",
    "inbox": "inbox",
    "listen": "127.0.0.1:8080",
    "log_level": "info",
    # The façades' read-only account; empty means the production URL (see README, "Façades").
    "facade_url": "",
    "state_dir": "var/state",  # the importer's own working state (snapshots of the last import), not data
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

    @property
    def facade_database_url(self) -> str:
        """Where the read-only façades read: their own account if configured, else production."""
        return self.facade_url or self.production_url

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
        raise UsageError(f"{name}={raw!r} is not a valid {type(like).__name__}") from error
    return raw


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
    unknown = set(document) - set(DEFAULTS) - set(DAEMON_DEFAULTS)
    if unknown:
        raise UsageError(f"unknown setting(s) in {config_file}: {', '.join(sorted(unknown))}")
    values = {**DEFAULTS, **DAEMON_DEFAULTS, **document}
    for key in DEFAULTS:
        override = env.get(f"STAMDATA_{key.upper()}")
        if override is not None:
            values[key] = override
    for key, default in DAEMON_DEFAULTS.items():
        override = env.get(f"STAMDATA_{key.upper()}")
        if override is not None:
            values[key] = _coerce(f"STAMDATA_{key.upper()}", override, default)
    return Settings(
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
    )
