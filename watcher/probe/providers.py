"""Where and how to reach each provider, for probing: the watcher's view of an endpoint.

Two sources are merged, the watcher's own config winning:

- the gateway's ``openclaw.json`` ``models.providers.<id>`` (``baseUrl``, ``api``,
  ``apiKey``), handed in as a plain mapping (the chain reader parses the file);
- the watcher's per-provider section (``ProviderConfig``): ``paid``, ``base_url``,
  ``api``, a ``credential`` *reference*, ``slots`` and ``daily_probe_budget``.

Secrets never live in these objects as plain strings. A credential is a reference
(``env:NAME``: an environment variable; ``cred:NAME``: ``$CREDENTIALS_DIRECTORY/NAME``,
i.e. systemd ``LoadCredential=``) resolved at probe time into a ``SecretStr``, which
prints as ``**********``. An inline ``apiKey`` from ``openclaw.json`` is wrapped in a
``SecretStr`` on the way in; ``${NAME}`` there is read as ``env:NAME``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from watcher.support.redaction import register_secret

ApiKind = Literal["ollama", "openai-completions", "openai-responses"]
API_KINDS: tuple[str, ...] = ("ollama", "openai-completions", "openai-responses")

OLLAMA_DEFAULT_BASE_URL = "http://127.0.0.1:11434"
DEFAULT_SLOTS = 1
DEFAULT_DAILY_PROBE_BUDGET = 500


class ProviderConfigError(ValueError):
    """Provider settings that cannot be used; ``problems`` lists every reason at once."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class CredentialError(RuntimeError):
    """A credential reference that cannot be resolved now. The message names the
    reference (``env:NAME``), never a value."""


class CredentialRef(BaseModel):
    """A pointer to a secret, or (from ``openclaw.json`` only) the secret itself."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["env", "cred", "inline"]
    name: str = ""  # env var or credential file name; empty for inline
    value: SecretStr | None = None  # inline only

    @classmethod
    def parse(cls, text: str) -> CredentialRef:
        """``env:NAME`` or ``cred:NAME``; anything else is refused (no inline secrets in
        the watcher's own config)."""
        kind, sep, name = text.partition(":")
        if not sep or kind not in ("env", "cred") or not name.strip():
            raise ValueError(
                "credential must be 'env:NAME' (environment variable) or 'cred:NAME' "
                "(systemd credential file); inline secrets are not accepted"
            )
        if kind == "cred" and ("/" in name or name in (".", "..")):
            raise ValueError("cred:NAME must be a plain file name inside $CREDENTIALS_DIRECTORY")
        return cls(kind=kind, name=name.strip())  # type: ignore[arg-type]

    @classmethod
    def from_openclaw(cls, api_key: str) -> CredentialRef:
        key = api_key.strip()
        if key.startswith("${") and key.endswith("}") and len(key) > 3:
            return cls(kind="env", name=key[2:-1])
        return cls(kind="inline", value=SecretStr(key))

    def describe(self) -> str:
        """Safe to log: says where the secret comes from, never what it is."""
        if self.kind == "inline":
            return "inline apiKey (openclaw.json)"
        return f"{self.kind}:{self.name}"

    def resolve(
        self, environ: Mapping[str, str] | None = None, credentials_dir: str | None = None
    ) -> SecretStr:
        """The secret, read now (so a rotated key or credential file is picked up)."""
        if self.kind == "inline":
            assert self.value is not None
            return self.value
        env = os.environ if environ is None else environ
        if self.kind == "env":
            value = env.get(self.name)
            if not value:
                raise CredentialError(f"credential {self.describe()}: variable is not set")
            return SecretStr(value)
        directory = credentials_dir if credentials_dir is not None else env.get(
            "CREDENTIALS_DIRECTORY"
        )
        if not directory:
            raise CredentialError(
                f"credential {self.describe()}: $CREDENTIALS_DIRECTORY is not set "
                "(add LoadCredential= to the unit)"
            )
        try:
            value = (Path(directory) / self.name).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise CredentialError(
                f"credential {self.describe()}: cannot read it ({exc.strerror or exc})"
            ) from None
        if not value:
            raise CredentialError(f"credential {self.describe()}: file is empty")
        return SecretStr(value)


class ProviderConfig(BaseModel):
    """The watcher config's section for one provider; every field optional."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    paid: bool = False
    base_url: str | None = None
    api: ApiKind | None = None
    credential: CredentialRef | None = None
    slots: int = Field(default=DEFAULT_SLOTS, ge=1, le=64)
    daily_probe_budget: int = Field(default=DEFAULT_DAILY_PROBE_BUDGET, ge=0)

    @field_validator("credential", mode="before")
    @classmethod
    def _credential_from_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            return CredentialRef.parse(value)
        if isinstance(value, CredentialRef) and value.kind != "inline":
            return value
        if value is None:
            return None
        raise ValueError("credential must be a string 'env:NAME' or 'cred:NAME'")

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return value


class Provider(BaseModel):
    """A provider resolved for probing: everything the probe client needs."""

    model_config = ConfigDict(frozen=True)

    id: str
    api: ApiKind
    base_url: str  # no trailing slash
    paid: bool = False
    credential: CredentialRef | None = None
    slots: int = DEFAULT_SLOTS
    daily_probe_budget: int = DEFAULT_DAILY_PROBE_BUDGET

    @property
    def speaks_ollama(self) -> bool:
        return self.api == "ollama"


def parse_provider_configs(raw: Mapping[str, Any]) -> dict[str, ProviderConfig]:
    """The watcher config's ``[providers.<id>]`` tables, every error reported at once."""
    problems: list[str] = []
    out: dict[str, ProviderConfig] = {}
    for pid, spec in raw.items():
        if not isinstance(spec, Mapping):
            problems.append(f"providers.{pid} must be a table")
            continue
        try:
            out[str(pid)] = ProviderConfig.model_validate(dict(spec))
        except ValidationError as exc:
            for err in exc.errors():
                where = ".".join(str(p) for p in err["loc"])
                problems.append(f"providers.{pid}.{where}: {err['msg']}")
    if problems:
        raise ProviderConfigError(problems)
    return out


def _gateway_field(spec: Any, key: str, attr: str) -> Any:
    """Read ``baseUrl``/``api``/``apiKey`` from a plain dict or from the chain reader's
    ``ProviderEndpoint`` (``base_url``/``api``/``api_key``)."""
    if isinstance(spec, Mapping):
        return spec.get(key)
    return getattr(spec, attr, None)


def _normalise_base(url: str, api: str) -> str:
    url = url.rstrip("/")
    if api == "ollama" and url.endswith("/v1"):
        # The native API lives at the root; a /v1 base is the OpenAI-compatible shim.
        url = url[: -len("/v1")]
    return url


def resolve_provider(
    provider_id: str,
    override: ProviderConfig | None = None,
    gateway: Any = None,
) -> Provider:
    """One provider: the watcher's override wins field by field over ``openclaw.json``.

    A provider with no ``api`` anywhere is taken as Ollama only when its id is
    ``ollama``; any other provider needs an ``api`` and a base URL from somewhere.
    """
    cfg = override or ProviderConfig()
    problems: list[str] = []

    api = cfg.api or _gateway_field(gateway, "api", "api")
    if api is None and provider_id == "ollama":
        api = "ollama"
    if api is None:
        problems.append(f"provider {provider_id!r}: no api (set api = \"ollama\" or "
                        "\"openai-completions\")")
    elif api not in API_KINDS:
        problems.append(
            f"provider {provider_id!r}: api {api!r} cannot be probed "
            f"(supported: {', '.join(API_KINDS)})"
        )

    base = cfg.base_url or _gateway_field(gateway, "baseUrl", "base_url")
    if base is None and api == "ollama":
        base = OLLAMA_DEFAULT_BASE_URL
    if base is None:
        problems.append(f"provider {provider_id!r}: no base URL (baseUrl or base_url)")
    elif not isinstance(base, str) or not base.startswith(("http://", "https://")):
        problems.append(f"provider {provider_id!r}: base URL must start with http(s)://")

    credential = cfg.credential
    if credential is None:
        key = _gateway_field(gateway, "apiKey", "api_key")
        if isinstance(key, str) and key.strip():
            credential = CredentialRef.from_openclaw(key)

    if problems:
        raise ProviderConfigError(problems)
    assert isinstance(base, str) and api is not None
    return Provider(
        id=provider_id,
        api=api,
        base_url=_normalise_base(base, api),
        paid=cfg.paid,
        credential=credential,
        slots=cfg.slots,
        daily_probe_budget=cfg.daily_probe_budget,
    )


class ProviderDirectory:
    """Every probe-able provider by id, resolved once; looks up a ``provider/model`` ref.

    Built from the watcher's overrides and the gateway's ``models.providers`` mapping.
    Unknown providers named ``ollama`` resolve to the local daemon; any other unknown
    provider is ``None`` (the scheduler skips and logs it, it is not model health).
    """

    def __init__(self, providers: Iterable[Provider]) -> None:
        self._by_id = {p.id: p for p in providers}

    @classmethod
    def build(
        cls,
        overrides: Mapping[str, ProviderConfig] | None = None,
        gateway_providers: Mapping[str, Any] | None = None,
    ) -> ProviderDirectory:
        overrides = overrides or {}
        gateway_providers = gateway_providers or {}
        problems: list[str] = []
        resolved: list[Provider] = []
        for pid in sorted(set(overrides) | set(gateway_providers)):
            try:
                resolved.append(
                    resolve_provider(pid, overrides.get(pid), gateway_providers.get(pid))
                )
            except ProviderConfigError as exc:
                problems.extend(exc.problems)
        if problems:
            raise ProviderConfigError(problems)
        return cls(resolved)

    def get(self, provider_id: str) -> Provider | None:
        found = self._by_id.get(provider_id)
        if found is None and provider_id == "ollama":
            found = resolve_provider("ollama")
            self._by_id["ollama"] = found
        return found

    def for_model(self, ref: str) -> Provider | None:
        provider_id, sep, model = ref.partition("/")
        if not sep or not model:
            return None
        return self.get(provider_id)

    def __iter__(self) -> Any:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    def __repr__(self) -> str:
        return f"ProviderDirectory({sorted(self._by_id)})"


def register_provider_secrets(
    directory: Iterable[Any], environ: Mapping[str, str] | None = None
) -> int:
    """Register every provider key the watcher can resolve now (``env:``, ``cred:``,
    inline ``apiKey``), so a key echoed in a gateway detail or an error message is
    redacted even before the first probe reads it. Returns how many were registered;
    unresolvable ones are skipped (the probe reports them, without the value)."""
    count = 0
    for provider in directory:
        credential = getattr(provider, "credential", None)
        if credential is None:
            continue
        try:
            register_secret(credential.resolve(environ).get_secret_value())
        except CredentialError:
            continue
        count += 1
    return count
