"""The active SLA config of a process, swapped whole when a new valid file is loaded."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Protocol

from internal.config.sla_config import SlaConfig

Listener = Callable[[SlaConfig], None]


class TenantPolicies(Protocol):
    """Where code that works for a tenant finds that tenant's SLA config: the one config of the
    process (an SlaConfig or a ConfigHolder answers), or the tenant's own file in a directory of
    them (internal/config/tenant_configs.py), without the callers changing."""

    def for_tenant(self, tenant: str) -> SlaConfig: ...


class ServedPolicies(TenantPolicies, Protocol):
    """What a process serves, config by config. A scope names one config: '' the file-wide one
    (a single file, or a directory's default.yaml), else the tenant whose own file it is. The
    delivery keys channel state by scope, so that two tenants' `team` channels are two."""

    def scope_of(self, tenant: str) -> str: ...

    def scopes(self) -> Mapping[str, SlaConfig]: ...


class ConfigHolder:
    def __init__(self, config: SlaConfig) -> None:
        self._config = config
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []

    @property
    def current(self) -> SlaConfig:
        """The process's config, for what is not a tenant's: its version in logs and metrics, the
        recompute of a new version. A request reads `for_tenant` instead."""
        return self._config

    def for_tenant(self, tenant: str) -> SlaConfig:
        # A single reference read: callers take one snapshot per request and use it throughout.
        return self._config

    def scope_of(self, tenant: str) -> str:
        return ""

    def scopes(self) -> Mapping[str, SlaConfig]:
        return {"": self._config}

    def describe(self) -> str:
        """What is in force, for log lines."""
        return f"policy {self._config.version}"

    def on_change(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def replace(self, config: SlaConfig) -> bool:
        """Install `config`; False (and nothing happens) when its version is already active."""
        with self._lock:
            if config.version == self._config.version:
                return False
            self._config = config
            listeners = list(self._listeners)
        for listener in listeners:
            listener(config)
        return True
