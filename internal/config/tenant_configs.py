"""Per-tenant SLA configs: `SLA_CONFIG_PATH` naming a directory (DESIGN §9).

The directory holds `<tenant>.yaml`, one whole config per tenant (metrics, policies, calendars,
ladder, channels), and optionally `default.yaml`, which serves every tenant without a file of its
own. Each file is validated, versioned and reloaded on its own: a broken file is refused with a
message naming the file and the key, its tenant keeps its last good config, and every other
tenant is untouched.

What is read: regular files (or symlinks to them, as a Kubernetes ConfigMap mounts its keys)
named `*.yaml` whose name is a tenant name (1-64 characters). Dotfiles and dot-directories are
skipped (a ConfigMap's `..data` and `..<timestamp>`, editors' swap files), and so is anything
else; a `*.yml` file is skipped with a warning, since it looks like a config that was meant to
be read. A tenant named `default` cannot have a file of its own: default.yaml is the default.

Removing a file: a tenant's file removed while default.yaml exists puts the tenant on the
default (its tickets are recomputed under it). Removing default.yaml, or a tenant's file when
there is no default, is refused like a broken file: the config stays in force, since the tenants
it serves would otherwise have none.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from internal.config.holder import ConfigHolder
from internal.config.sla_config import ConfigError, SlaConfig, load_config, parse_served_config
from internal.config.watcher import DEBOUNCE_SECONDS, POLL_SECONDS, FileWatcher, Installed
from internal.config.yaml_load import YamlLoadError, read_bounded
from internal.obs.metrics import CONFIG_RELOADS

log = logging.getLogger(__name__)

DEFAULT_FILE = "default.yaml"
DEFAULT_SCOPE = ""  # the default.yaml's scope, as the file-wide config's (recompute_repo)
MAX_TENANT_CHARS = 64  # as internal/config/tokens.py bounds a token's tenant

# A scope's new config: (scope, config). For a tenant whose file was removed, the scope is the
# tenant's and the config the default now serving it.
ScopeListener = Callable[[str, SlaConfig], None]


class NoTenantConfig(LookupError):
    """The tenant has no file and the directory no default.yaml."""


def scope_name(scope: str) -> str:
    """A scope as logs and metrics show it."""
    return "default" if scope == DEFAULT_SCOPE else scope


def config_files(directory: Path) -> dict[str, Path]:
    """scope -> file of the configs in `directory` ('' for default.yaml)."""
    files: dict[str, Path] = {}
    for entry in sorted(directory.iterdir()):
        name = entry.name
        if name.startswith("."):
            continue
        if name.endswith(".yml"):
            log.warning("%s: ignored; per-tenant SLA configs are named <tenant>.yaml", entry)
            continue
        if not name.endswith(".yaml") or entry.is_dir():
            continue
        stem = name.removesuffix(".yaml")
        if not stem or len(stem) > MAX_TENANT_CHARS:
            log.warning("%s: ignored; a tenant name has 1-%d characters", entry, MAX_TENANT_CHARS)
            continue
        files[DEFAULT_SCOPE if name == DEFAULT_FILE else stem] = entry
    return files


def _parse_file(path: Path) -> SlaConfig:
    try:
        data = read_bounded(path)
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err.strerror or err}") from None
    except YamlLoadError as err:
        raise ConfigError(f"refused {path}: {err}") from None
    try:
        return parse_served_config(data)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def load_tenant_configs(directory: Path) -> TenantConfigs:
    """Every config in `directory`, each validated on its own. Any invalid file refuses the
    start, naming it: a process started with one tenant on no config (or on the default it did
    not choose) would serve it wrongly until someone reads the log."""
    try:
        files = config_files(directory)
    except OSError as err:
        raise ConfigError(f"cannot read {directory}: {err.strerror or err}") from None
    if not files:
        raise ConfigError(
            f"{directory}: no SLA config in the directory: expected <tenant>.yaml files"
            f" and/or {DEFAULT_FILE}"
        )
    return TenantConfigs({scope: _parse_file(path) for scope, path in files.items()})


class TenantConfigs:
    """The configs of a directory, by scope; a ServedPolicies (internal/config/holder.py).
    Each scope is replaced on its own; readers take one reference per request."""

    def __init__(self, configs: Mapping[str, SlaConfig]) -> None:
        self._configs: dict[str, SlaConfig] = dict(configs)
        self._lock = threading.Lock()
        self._listeners: list[ScopeListener] = []

    def for_tenant(self, tenant: str) -> SlaConfig:
        configs = self._configs  # one snapshot: a reload swaps the whole dict
        config = configs.get(tenant) if tenant != DEFAULT_SCOPE else None
        if config is None:
            config = configs.get(DEFAULT_SCOPE)
        if config is None:
            raise NoTenantConfig(f"tenant {tenant!r} has no SLA config (and there is no default)")
        return config

    def scope_of(self, tenant: str) -> str:
        return tenant if tenant != DEFAULT_SCOPE and tenant in self._configs else DEFAULT_SCOPE

    def scopes(self) -> Mapping[str, SlaConfig]:
        return self._configs

    def own_tenants(self) -> tuple[str, ...]:
        """The tenants with a file of their own (whom the default does not serve)."""
        return tuple(sorted(s for s in self._configs if s != DEFAULT_SCOPE))

    def describe(self) -> str:
        return "policies " + ", ".join(
            f"{scope_name(s)} {c.version}" for s, c in sorted(self._configs.items())
        )

    def on_change(self, listener: ScopeListener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def replace(self, scope: str, config: SlaConfig) -> bool:
        """Install `config` for `scope`; False when that version is already its config."""
        with self._lock:
            old = self._configs.get(scope)
            if old is not None and old.version == config.version:
                return False
            self._configs = {**self._configs, scope: config}
            listeners = list(self._listeners)
        for listener in listeners:
            listener(scope, config)
        return True

    def remove(self, scope: str) -> SlaConfig:
        """Drop a tenant's file: the tenant is served by the default, which is returned.
        ConfigError when nothing would serve it (the default itself, or no default)."""
        with self._lock:
            default = self._configs.get(DEFAULT_SCOPE)
            if scope == DEFAULT_SCOPE or default is None:
                raise ConfigError(
                    "removed, and no other config would serve "
                    + ("the tenants without a file" if scope == DEFAULT_SCOPE else "its tenant")
                )
            if scope not in self._configs:
                return default
            self._configs = {s: c for s, c in self._configs.items() if s != scope}
            listeners = list(self._listeners)
        for listener in listeners:
            listener(scope, default)
        return default


class TenantConfigWatcher(FileWatcher):
    """Follows a directory of configs into a TenantConfigs, file by file: the FileWatcher's
    watching (directory events, debounce, poll), with a check that compares every file's hash
    with the last one seen. Each file's reload is counted as a single file's is, by result only:
    the tenant is named in the log line, not in a label."""

    what = "SLA config"
    refusals = (ConfigError,)
    reloads = CONFIG_RELOADS

    def __init__(
        self,
        directory: Path,
        configs: TenantConfigs,
        *,
        debounce: float = DEBOUNCE_SECONDS,
        poll: float = POLL_SECONDS,
    ) -> None:
        self._configs = configs
        self._digests: dict[str, str] = {}  # scope -> hash of the file last seen (or refused)
        self._refused_scopes: set[str] = set()
        super().__init__(directory, debounce=debounce, poll=poll)

    # The FileWatcher's per-file hooks: unused, since `check` works file by file itself.
    def install(self, data: bytes, *, startup: bool) -> Installed:
        raise NotImplementedError

    def in_force(self) -> str:
        return self._configs.describe()

    def applied(self) -> None:
        raise NotImplementedError

    def _dirs_to_watch(self) -> set[Path]:
        dirs = {self._path}
        target = self._path.resolve()
        if target != self._path:
            dirs.add(target)
        return dirs

    def _refuse_file(self, scope: str, path: Path, why: str, digest: str) -> None:
        self._digests[scope] = digest
        self._refused_scopes.add(scope)
        self.reloads.labels(result="rejected").inc()
        kept = self._configs.scopes().get(scope)
        log.error(
            "refused new SLA config %s: %s; %s still runs %s",
            path,
            " ".join(why.split()),
            "the default" if scope == DEFAULT_SCOPE else f"tenant {scope}",
            f"policy {kept.version}" if kept is not None else "the default",
            extra={"config_path": str(path), "tenant": scope_name(scope)},
        )

    def check(self, *, startup: bool = False) -> None:
        try:
            files = config_files(self._path)
        except OSError as err:
            if not self._unreadable:
                self._unreadable = True
                log.warning(
                    "cannot read SLA config directory %s: %s; still running %s",
                    self._path,
                    err.strerror or err,
                    self.in_force(),
                )
            return
        self._unreadable = False
        for scope, path in files.items():
            self._check_file(scope, path, startup)
        for scope in sorted(set(self._configs.scopes()) - set(files)):
            self._check_removed(scope)

    def _check_file(self, scope: str, path: Path, startup: bool) -> None:
        try:
            data = read_bounded(path)
        except OSError:
            return  # gone between the listing and the read: the next check sees it
        except YamlLoadError as err:
            if self._digests.get(scope) != f"refused: {err}":
                self._refuse_file(scope, path, str(err), f"refused: {err}")
            return
        digest = hashlib.sha256(data).hexdigest()
        if self._digests.get(scope) == digest:
            return
        try:
            config = parse_served_config(data)
        except ConfigError as err:
            self._refuse_file(scope, path, str(err), digest)
            return
        self._digests[scope] = digest
        was_refused = scope in self._refused_scopes
        self._refused_scopes.discard(scope)
        if not self._configs.replace(scope, config):
            if not startup:
                self.reloads.labels(result="unchanged").inc()
                if was_refused:
                    log.info(
                        "SLA config %s is valid again; policy %s unchanged", path, config.version
                    )
            return
        self.reloads.labels(result="applied").inc()
        log.info(
            "loaded SLA config %s: %s now runs policy %s",
            path,
            "the default" if scope == DEFAULT_SCOPE else f"tenant {scope}",
            config.version,
            extra={"policy_version": config.version, "tenant": scope_name(scope)},
        )

    def _check_removed(self, scope: str) -> None:
        marker = "removed"
        if self._digests.get(scope) == marker:
            return
        path = self._path / (DEFAULT_FILE if scope == DEFAULT_SCOPE else f"{scope}.yaml")
        try:
            default = self._configs.remove(scope)
        except ConfigError as err:
            self._refuse_file(scope, path, str(err), marker)
            return
        self._digests.pop(scope, None)
        self._refused_scopes.discard(scope)
        self.reloads.labels(result="applied").inc()
        log.info(
            "SLA config %s removed: tenant %s now runs the default, policy %s",
            path,
            scope,
            default.version,
            extra={"policy_version": default.version, "tenant": scope},
        )


def load_policies(path: Path) -> ConfigHolder | TenantConfigs:
    """What `SLA_CONFIG_PATH` names: one file for every tenant, or a directory of them."""
    if path.is_dir():
        return load_tenant_configs(path)
    return ConfigHolder(load_config(path))
