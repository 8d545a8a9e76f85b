"""The watcher's configuration: one TOML file plus ``FAILOVER_WATCHER_*`` overrides.

Typed and immutable once loaded (pydantic-settings). Nested keys are overridden with
a double underscore: ``FAILOVER_WATCHER_JOURNAL__START_AT=head``,
``FAILOVER_WATCHER_METRICS__PORT=9900``. Secrets are never values here, only
references: ``cred:NAME`` (``$CREDENTIALS_DIRECTORY/NAME``, systemd LoadCredential)
or ``env:NAME``. ``load_settings`` raises ``ConfigError`` listing every problem.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from watcher.alerts.alertmanager import AlertmanagerConfig
from watcher.alerts.config import AlertsConfig
from watcher.core.policy import Policy
from watcher.oversight.config import ControlConfig
from watcher.probe.providers import ProviderConfig
from watcher.support.durations import parse_duration

DEFAULT_CONFIG = Path("/etc/failover-watcher/watcher.toml")
DEFAULT_STATE_DIR = Path("/var/lib/failover-watcher")
SOURCE_KINDS = ("journal", "file", "jsonl", "export")


class ConfigError(ValueError):
    """The configuration cannot be used; ``problems`` lists every reason at once."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class JournalSettings(_Section):
    source: str = Field(
        default="journal",
        description="journal | journal:DIR | file:PATH | jsonl:PATH | export:PATH | -",
    )
    units: list[str] = Field(default_factory=lambda: ["openclaw-gateway.service"])
    identifiers: list[str] = Field(default_factory=list)
    start_at: str = Field(default="tail", description="tail | head | since:<duration>")
    catch_up_age_s: float = Field(default=600.0, gt=0)
    max_batch: int = Field(default=1000, ge=1)

    @field_validator("start_at")
    @classmethod
    def _start_at(cls, value: str) -> str:
        if value in ("tail", "head"):
            return value
        kind, _, duration = value.partition(":")
        if kind == "since":
            try:
                parse_duration(duration)
            except ValueError as exc:
                raise ValueError(f"since:<duration> has a bad duration: {exc}") from None
            return value
        raise ValueError("must be tail, head or since:<duration> (e.g. since:15m)")

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        kind, sep, rest = value.partition(":")
        if value in ("journal", "-"):
            return value
        if sep and kind in SOURCE_KINDS:
            if not rest:
                raise ValueError(f"{kind}: needs a path after the colon")
            return value
        if sep and "/" not in kind:
            raise ValueError(
                f"unknown source kind {kind!r}: use journal, journal:DIR, file:PATH, "
                "jsonl:PATH, export:PATH or -"
            )
        return value  # a plain path: a journal directory or a recorded log to replay


class ProbeSettings(_Section):
    enabled: bool = True
    interval_s: float = Field(
        default=60.0, gt=0, description="the probe cadence: sets policy.probe_interval_s"
    )
    jitter_s: float | None = Field(
        default=None, ge=0,
        description="for the standalone interval scheduler only; the daemon probes when "
        "the core asks (kept so older configs load)",
    )
    global_cap: int = Field(default=16, ge=1)
    timeout_s: float = Field(default=5.0, gt=0)
    first_run_after_s: float | None = Field(default=None, ge=0)


class DrillSettings(_Section):
    include_paid: bool = Field(
        default=False, description="drills probe paid models too (they cost money)"
    )
    openclaw: str = Field(
        default="openclaw",
        description="the gateway's CLI, for drill --live (a command line; run as the "
        "gateway's user, or with its OPENCLAW_* environment)",
    )
    gateway_token: str | None = Field(
        default=None,
        description="drill --live: the gateway token as a credential reference (env:NAME "
        "or cred:NAME), handed to the CLI as OPENCLAW_GATEWAY_TOKEN; none: the CLI's own",
    )
    schedule: str | None = Field(
        default=None,
        description="run a drill on this cron schedule (minute hour day month weekday, "
        "the host's time zone), e.g. '0 6 * * mon' for Mondays 06:00; name the weekday "
        "(APScheduler 3 counts 0 as Monday, not Sunday); none: never",
    )

    @field_validator("gateway_token")
    @classmethod
    def _reference(cls, value: str | None) -> str | None:
        if value is not None:
            from watcher.probe.providers import CredentialRef

            CredentialRef.parse(value)
        return value

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a cron schedule ({exc})") from None
        return value


class MetricsSettings(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=9877, ge=0, le=65535, description="0 picks a free port")


class PluginSettings(_Section):
    """The gateway plugin (``gateway-plugin/``) that makes the pin steer the gateway."""

    heartbeat_s: float = Field(
        default=30.0,
        gt=0,
        description="rewrite the pin file's heartbeat_at at least this often; keep it well "
        "under the plugin's maxAgeSeconds (default 180)",
    )
    required: bool = Field(
        default=True,
        description="send one PLUGIN_INACTIVE card at start-up when openclaw.json does not "
        "load the plugin so that the pin can steer",
    )


class WatcherSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FAILOVER_WATCHER_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        hide_input_in_errors=True,
    )

    state_dir: Path = DEFAULT_STATE_DIR
    gateway_config: Path = Field(
        default=Path("~/.openclaw/openclaw.json"),
        description="the gateway's openclaw.json: read, never written",
    )
    breaker_state_dir: Path | None = Field(
        default=Path("/var/lib/failover-breaker"),
        description="the breaker's state dir, read to tell its openclaw.json writes from "
        "other edits (only read; none: every chain change is 'not the breaker')",
    )
    tick_interval_s: float = Field(default=15.0, gt=0)
    log_level: str = "INFO"
    journal: JournalSettings = Field(default_factory=JournalSettings)
    policy: Policy = Field(default_factory=Policy)
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    probes: ProbeSettings = Field(default_factory=ProbeSettings)
    drill: DrillSettings = Field(default_factory=DrillSettings)
    alerts: AlertsConfig | None = Field(
        default=None, description="Telegram; absent: cards are kept in the outbox only"
    )
    alertmanager: AlertmanagerConfig | None = Field(
        default=None, description="the fleet's Alertmanager, beside Telegram; absent: none"
    )
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    plugin: PluginSettings = Field(default_factory=PluginSettings)
    control: ControlConfig = Field(
        default_factory=ControlConfig,
        description="Telegram commands and card buttons; uses the [alerts] bot",
    )

    @model_validator(mode="after")
    def _one_probe_interval(self) -> WatcherSettings:
        """One probe cadence: the core's ``policy.probe_interval_s`` (what ``simulate``
        follows too). ``[probes] interval_s``, the older knob, sets it when the policy
        does not; both set and different is an error."""
        from_probes = "interval_s" in self.probes.model_fields_set
        from_policy = "probe_interval_s" in self.policy.model_fields_set
        if from_probes and from_policy and self.probes.interval_s != self.policy.probe_interval_s:
            raise ValueError(
                f"probes.interval_s ({self.probes.interval_s}) and policy.probe_interval_s "
                f"({self.policy.probe_interval_s}) disagree: they are one cadence, set one"
            )
        if from_probes and not from_policy:
            policy = self.policy.model_copy(update={"probe_interval_s": self.probes.interval_s})
            object.__setattr__(self, "policy", policy)
        return self

    @model_validator(mode="after")
    def _control_needs_the_alerts_bot(self) -> WatcherSettings:
        if self.control.enabled and self.alerts is None:
            raise ValueError(
                "control.enabled needs an [alerts] section: commands use the alerts bot"
            )
        return self

    @field_validator("state_dir", "gateway_config")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Precedence: explicit arguments, then the environment, then the TOML file.
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))


def _problems(exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors():
        where = ".".join(str(part) for part in err["loc"]) or "(top level)"
        out.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
    return out


def _unreadable(path: Path) -> str | None:
    """Why the config file cannot be read, in words, or None."""
    try:
        if path.is_dir():
            return "is a directory, not a config file"
        with path.open("rb"):
            return None
    except FileNotFoundError:
        return "no such config file"
    except PermissionError:
        import getpass

        return (f"permission denied for user {getpass.getuser()} (the file, or a directory "
                "above it, is not readable; see the README's install section)")
    except OSError as exc:
        return exc.strerror or str(exc)


def load_settings(path: Path | None = None, **overrides: Any) -> WatcherSettings:
    """Load ``path`` (TOML; None or missing default: environment and defaults only)."""
    if path is not None:
        problem = _unreadable(Path(path))
        if problem:
            raise ConfigError([f"{path}: {problem}"])
    toml_file = Path(path) if path is not None else None

    class _FromFile(WatcherSettings):
        model_config = SettingsConfigDict(
            **{**WatcherSettings.model_config, "toml_file": toml_file}
        )

    try:
        return _FromFile(**overrides)
    except ValidationError as exc:
        problems = _problems(exc)
        raise ConfigError(problems + _cross_field_problems(toml_file, problems)) from None
    except (OSError, ValueError) as exc:  # unreadable file, TOML syntax
        raise ConfigError([f"{path}: {exc}"]) from None


def _cross_field_problems(path: Path | None, already: list[str]) -> list[str]:
    """Pydantic skips a model's cross-field checks while one of its fields is bad, so a
    second run would find new problems. List them now, from the file's raw values."""
    if path is None:
        return []
    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
    except (OSError, ValueError):
        return []
    section = raw.get("policy")
    if not isinstance(section, dict):
        return []
    found = [f"policy: {p}" for p in Policy.cross_field_problems(section)]
    return [p for p in found if not any(p.split(": ", 1)[1] in a for a in already)]
