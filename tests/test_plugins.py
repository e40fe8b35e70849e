"""Plugin loading: failures are recorded, never fatal; conflicts and misspelled hooks are caught."""

from __future__ import annotations

import importlib.metadata as md
import json
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

import bdcore.plugins as plugins_mod
from bdcore.cli import main
from bdcore.errors import ComponentNotFound
from bdcore.plugins import PluginHost, load_plugins
from bdcore.registry import Provenance


def fake_entry_point(name: str, module: str, dist: str) -> SimpleNamespace:
    ep = md.EntryPoint(name=name, value=module, group="bdcore")
    return SimpleNamespace(name=name, load=ep.load, dist=SimpleNamespace(metadata={"Name": dist}, version="9.9"))


@pytest.fixture
def fake_eps(monkeypatch: pytest.MonkeyPatch) -> list[SimpleNamespace]:
    eps = [
        fake_entry_point("good", "goodplug", "bd-plugin-good"),
        fake_entry_point("broken", "brokenplug", "bd-plugin-broken"),
        fake_entry_point("toy", "bdcore.testing.toy", "bd-plugin-toy"),
    ]
    monkeypatch.setattr(plugins_mod, "_entry_points", lambda: eps)
    return eps


def test_builtins_register_through_hooks(bd_host: PluginHost) -> None:
    assert bd_host.loaded[0].builtin and bd_host.loaded[0].name == "bdcore"
    assert {"psnr", "ssim", "ms-ssim"} <= set(bd_host.registry.names("metric"))
    assert bd_host.registry.names("trigger") == ["none"]
    assert "embedded" in bd_host.registry.names("dataset")
    comp = bd_host.registry.get("metric", "psnr")
    assert comp.provenance.distribution == "bdcore"


def test_broken_plugin_is_recorded_not_fatal(fake_eps: list[SimpleNamespace]) -> None:
    host = load_plugins()
    assert [p.name for p in host.loaded] == ["bdcore", "good", "toy"]
    (failure,) = host.failures
    assert failure.plugin == "broken" and failure.distribution == "bd-plugin-broken"
    assert "not_installed_anywhere" in failure.error
    assert "box3" in host.registry.names("defense")
    with pytest.raises(ComponentNotFound, match="failed to load"):
        host.registry.get("trigger", "brokenthing")


def test_misspelled_hook_is_caught(bd_host: PluginHost) -> None:
    import misspelled

    assert bd_host.add_plugin(misspelled, "misspelled", Provenance("misspelled", "bd-plugin-m", "1")) is None
    (failure,) = bd_host.failures
    assert "register_trigers" in failure.error and "register_triggers" in failure.error


def test_duplicate_name_names_both_distributions(bd_host: PluginHost) -> None:
    import clashplug

    from bdcore.testing import toy

    bd_host.add_plugin(toy, "toy", Provenance("toy", "bd-plugin-toy", "1.0"))
    assert bd_host.add_plugin(clashplug, "clash", Provenance("clash", "bd-plugin-clash", "2.0")) is None
    err = bd_host.failures[-1].error
    assert "bd-plugin-toy 1.0" in err and "bd-plugin-clash 2.0" in err and "toy-patch" in err
    # the clashing plugin left nothing behind
    assert bd_host.registry.get("trigger", "toy-patch").provenance.distribution == "bd-plugin-toy"


def test_allow_and_block_lists(fake_eps: list[SimpleNamespace], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BDCORE_LOAD_PLUGINS", "good")
    assert [p.name for p in load_plugins().loaded] == ["bdcore", "good"]
    monkeypatch.delenv("BDCORE_LOAD_PLUGINS")
    monkeypatch.setenv("BDCORE_DISABLE_PLUGINS", "broken,toy")
    host = load_plugins()
    assert [p.name for p in host.loaded] == ["bdcore", "good"] and not host.failures


def test_cli_plugins_lists_failures(fake_eps: list[SimpleNamespace]) -> None:
    res = CliRunner().invoke(main, ["plugins"])
    assert res.exit_code == 0, res.output
    assert "good (bd-plugin-good 9.9)" in res.output
    assert "FAILED to load: broken (bd-plugin-broken 9.9)" in res.output
    res = CliRunner().invoke(main, ["plugins", "--json", "--strict-plugins"])
    assert res.exit_code == 3
    data = json.loads(res.output)
    assert data["failed"][0]["distribution"] == "bd-plugin-broken"


SPEC_OK = """
[run]
seed = 1
[data]
use = "toy-smooth"
params = { count = 8, size = 8 }
[victim]
use = "toy-denoiser"
params = { width = 4 }
[train]
steps = 2
batch_size = 2
[[metric]]
use = "psnr"
"""


def test_spec_needing_broken_plugin_exits_3_others_run(fake_eps: list[SimpleNamespace], tmp_path) -> None:  # noqa: ANN001
    bad = tmp_path / "needs_broken.toml"
    bad.write_text(SPEC_OK.replace("[run]\nseed = 1", '[run]\nseed = 1\nrequires = ["bd-plugin-broken"]'))
    res = CliRunner().invoke(main, ["check", str(bad)])
    assert res.exit_code == 3, res.output
    good = tmp_path / "fine.toml"
    good.write_text(SPEC_OK)
    res = CliRunner().invoke(main, ["run", str(good), "--out", str(tmp_path / "runs"), "-q"])
    assert res.exit_code == 0, res.output
    # a component only the broken plugin could provide: exit 3, naming it
    uses = tmp_path / "uses_broken.toml"
    uses.write_text(SPEC_OK.replace('use = "psnr"', 'use = "broken-metric"'))
    res = CliRunner().invoke(main, ["check", str(uses)])
    assert res.exit_code == 3, res.output
    assert "bd-plugin-broken" in res.output and "broken-metric" in res.output


def test_cli_list(fake_eps: list[SimpleNamespace]) -> None:
    res = CliRunner().invoke(main, ["list", "defenses", "--json"])
    assert res.exit_code == 0
    names = {c["name"]: c for c in json.loads(res.output)}
    assert names["box3"]["distribution"] == "bd-plugin-good" and names["none"]["distribution"] == "bdcore"


def test_requires_counts_plugins_added_directly() -> None:
    """``bdcore.testing.make_host`` adds plugin modules without installing them: ``requires`` accepts them."""
    from bdcore.testing import make_host
    from bdcore.testing import toy as toy_mod

    host = make_host(toy=False)
    assert host.check_requires(["toy"]) != []
    host.add_plugin(toy_mod, "toy", Provenance("toy", "toy", "test"))
    assert host.check_requires(["toy"]) == []
    assert "not installed" in host.check_requires(["bd-plugin-nowhere"])[0]


def test_import_object_resolves_dotted_attributes_and_names_what_is_missing() -> None:
    from bdcore.registry import import_object

    assert import_object("os.path:join") is __import__("os").path.join
    assert import_object("json") is __import__("json")
    with pytest.raises(ImportError, match=r"has no attribute 'path\.nope'"):
        import_object("os:path.nope")
    with pytest.raises(ImportError):
        import_object("no_such_module_here:x")
