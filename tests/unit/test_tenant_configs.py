"""Per-tenant SLA configs (internal/config/tenant_configs.py): which files of a directory are
read, start-up refusals, each tenant's config and its fallback to default.yaml, and the watcher
reloading file by file (a broken file refused for its tenant only; a Kubernetes `..data` swap);
and a channel's `slack_webhook_file`, read at each send."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from internal.config.sla_config import ConfigError, parse_config
from internal.config.tenant_configs import (
    NoTenantConfig,
    TenantConfigs,
    TenantConfigWatcher,
    load_tenant_configs,
)
from internal.notify.notifier import ChannelUnavailable, for_channel
from support.configs import config_text
from support.tokens import save_by_rename


def text(resolution: str = "8h") -> str:
    return config_text(policies={"high": {"gold": {"response": "15m", "resolution": resolution}}})


def resolution(config: object) -> float:
    return config.targets("high", "gold").seconds["resolution"]  # type: ignore[attr-defined, no-any-return]


def eventually(predicate: Callable[[], object], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout}s: {what}")


def test_the_directory_reads_tenant_yaml_files_and_default_and_skips_the_rest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`<tenant>.yaml` per tenant, `default.yaml` for the others; dotfiles, `..data`, `*.yml`
    (warned about) and other files are not configs."""
    (tmp_path / "acme.yaml").write_text(text("2h"))
    (tmp_path / "default.yaml").write_text(text("8h"))
    (tmp_path / ".acme.yaml.swp").write_text("not yaml: [")
    (tmp_path / "..data").mkdir()
    (tmp_path / "..data" / "globex.yaml").write_text("not yaml: [")
    (tmp_path / "globex.yml").write_text("not yaml: [")
    (tmp_path / "README.md").write_text("notes")
    with caplog.at_level(logging.WARNING):
        configs = load_tenant_configs(tmp_path)
    assert sorted(configs.scopes()) == ["", "acme"]
    assert resolution(configs.for_tenant("acme")) == 2 * 3600
    assert resolution(configs.for_tenant("globex")) == 8 * 3600  # the default
    assert configs.scope_of("acme") == "acme" and configs.scope_of("globex") == ""
    assert any("globex.yml: ignored" in r.getMessage() for r in caplog.records)


def test_a_directory_without_configs_or_with_a_broken_one_refuses_the_start(
    tmp_path: Path,
) -> None:
    """No `<tenant>.yaml` and no `default.yaml`: a clear start-up error; one invalid file: the
    start is refused with the file and the key."""
    with pytest.raises(ConfigError, match=r"no SLA config in the directory.*default\.yaml"):
        load_tenant_configs(tmp_path)
    (tmp_path / "acme.yaml").write_text(text())
    (tmp_path / "globex.yaml").write_text(text("soon"))
    with pytest.raises(ConfigError, match=r"globex\.yaml: policies\.high\.gold\.resolution"):
        load_tenant_configs(tmp_path)


def test_without_a_default_a_tenant_without_a_file_has_no_config() -> None:
    """Only the tenants with a file are served when there is no default.yaml."""
    configs = TenantConfigs({"acme": parse_config(text())})
    assert configs.for_tenant("acme").version == parse_config(text()).version
    with pytest.raises(NoTenantConfig):
        configs.for_tenant("globex")


def test_removing_a_file_puts_its_tenant_on_the_default_and_removing_the_default_is_refused() -> (
    None
):
    """A tenant whose file goes is served by the default (its listeners hear of it, to
    recompute the tenant's tickets); the default itself cannot go."""
    default, own = parse_config(text("8h")), parse_config(text("2h"))
    configs = TenantConfigs({"": default, "acme": own})
    heard: list[tuple[str, str]] = []
    configs.on_change(lambda scope, config: heard.append((scope, config.version)))
    assert configs.remove("acme") is default
    assert configs.for_tenant("acme") is default and heard == [("acme", default.version)]
    with pytest.raises(ConfigError, match="removed"):
        configs.remove("")
    assert configs.for_tenant("globex") is default


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[tuple[Path, TenantConfigs]]:
    (tmp_path / "acme.yaml").write_text(text("2h"))
    (tmp_path / "globex.yaml").write_text(text("3h"))
    configs = load_tenant_configs(tmp_path)
    watcher = TenantConfigWatcher(tmp_path, configs, poll=60).start()
    yield tmp_path, configs
    watcher.stop()


def test_a_broken_file_is_refused_for_its_tenant_while_the_others_edit_applies(
    watched: tuple[Path, TenantConfigs], caplog: pytest.LogCaptureFixture
) -> None:
    """acme's broken save is refused (the file and the key logged), acme keeps its config;
    globex's edit at the same time applies, and only globex's listeners' scope is told."""
    directory, configs = watched
    heard: list[str] = []
    configs.on_change(lambda scope, config: heard.append(scope))
    acme_before = configs.for_tenant("acme")
    with caplog.at_level(logging.INFO):
        save_by_rename(directory / "acme.yaml", text("soon"))
        save_by_rename(directory / "globex.yaml", text("5h"))
        eventually(lambda: resolution(configs.for_tenant("globex")) == 5 * 3600, what="globex")
        eventually(
            lambda: any("refused new SLA config" in r.getMessage() for r in caplog.records),
            what="acme refused",
        )
    assert configs.for_tenant("acme") is acme_before
    assert heard == ["globex"]
    (refusal,) = [
        r.getMessage() for r in caplog.records if "refused new SLA config" in r.getMessage()
    ]
    assert "acme.yaml" in refusal and "policies.high.gold.resolution" in refusal


def test_a_new_tenant_file_is_picked_up(watched: tuple[Path, TenantConfigs]) -> None:
    """A file added for a new tenant serves that tenant from then on."""
    directory, configs = watched
    with pytest.raises(NoTenantConfig):
        configs.for_tenant("initech")
    save_by_rename(directory / "initech.yaml", text("6h"))
    eventually(lambda: "initech" in configs.scopes(), what="initech added")
    assert resolution(configs.for_tenant("initech")) == 6 * 3600


def test_a_kubernetes_configmap_swap_reloads_the_tenant_it_changed(tmp_path: Path) -> None:
    """A ConfigMap volume: each key a symlink into `..data`, itself a symlink to a timestamped
    directory that a update replaces by renaming a new `..data` over it. The tenant whose key
    changed gets its new config; the other keeps the same object."""

    def publish(name: str, files: dict[str, str]) -> None:
        data = tmp_path / name
        data.mkdir()
        for key, content in files.items():
            (data / key).write_text(content)
        (tmp_path / "..data_tmp").symlink_to(name)
        os.replace(tmp_path / "..data_tmp", tmp_path / "..data")

    publish("..2024_01", {"acme.yaml": text("2h"), "default.yaml": text("8h")})
    for key in ("acme.yaml", "default.yaml"):
        (tmp_path / key).symlink_to(f"..data/{key}")
    configs = load_tenant_configs(tmp_path)
    default = configs.for_tenant("globex")
    watcher = TenantConfigWatcher(tmp_path, configs, poll=60).start()
    try:
        publish("..2024_02", {"acme.yaml": text("3h"), "default.yaml": text("8h")})
        eventually(lambda: resolution(configs.for_tenant("acme")) == 3 * 3600, what="swap")
    finally:
        watcher.stop()
    assert configs.for_tenant("globex") is default


def test_a_webhook_file_is_read_at_each_send(tmp_path: Path) -> None:
    """`slack_webhook_file`: the URL comes from the file (whitespace dropped), read again for
    each notifier, so that a rotated Secret applies without a reload; a missing file makes the
    channel unavailable without showing any secret."""
    hook = tmp_path / "url"
    hook.write_text("http://127.0.0.1:1/hooks/one\n")
    config = parse_config(
        config_text(
            channels={"team": {"slack_webhook_file": str(hook)}},
            escalation=[{"at_percent": 100, "level": 1, "kind": "breach", "notify": ["team"]}],
        )
    )
    channel = config.channels["team"]
    first = for_channel(channel, {}, timeout=1.0)
    save_by_rename(hook, "http://127.0.0.1:1/hooks/two")
    second = for_channel(channel, {}, timeout=1.0)
    assert first.webhook_url.endswith("/hooks/one")  # type: ignore[attr-defined]
    assert second.webhook_url.endswith("/hooks/two")  # type: ignore[attr-defined]
    hook.unlink()
    with pytest.raises(ChannelUnavailable, match="cannot read"):
        for_channel(channel, {}, timeout=1.0)
