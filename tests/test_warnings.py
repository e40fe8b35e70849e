"""The ``bdcore`` command silences the known third-party deprecation warnings (and only those); the tests
keep every warning (pytest restores the filters after each test)."""

from __future__ import annotations

import re
import subprocess
import sys
import warnings

import pytest
from click.testing import CliRunner

import bdcore.cli as cli
from bdcore.third_party_warnings import KNOWN, silence_known_third_party_warnings


def test_the_command_line_installs_the_filters_for_known_warnings_only() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert CliRunner().invoke(cli.main, ["plugins", "--json"]).exit_code == 0
        warnings.warn(
            "`torch.jit.script` is deprecated. Please switch to `torch.compile` or `torch.export`.",
            FutureWarning,
            stacklevel=2,
        )
        with pytest.raises(FutureWarning, match="our own"):
            warnings.warn("our own deprecation", FutureWarning, stacklevel=2)
        with pytest.raises(DeprecationWarning):  # same text, another category: not ours to hide
            warnings.warn("`torch.jit.script` is deprecated.", DeprecationWarning, stacklevel=2)


def test_the_filter_matches_what_the_library_really_raises() -> None:
    """Importing compressai (which imports torch_geometric) raises the FutureWarning; with the filter, nothing."""
    pytest.importorskip("compressai")
    probe = "import compressai"
    plain = subprocess.run([sys.executable, "-W", "error", "-c", probe], capture_output=True, text=True, timeout=300)
    silenced = subprocess.run(
        [
            sys.executable,
            "-W",
            "error",
            "-c",
            "from bdcore.third_party_warnings import silence_known_third_party_warnings as s; s(); " + probe,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert silenced.returncode == 0, silenced.stderr
    if plain.returncode != 0:  # the library still warns: it is the warning we list
        assert any(re.search(message, plain.stderr) for _, message, _ in KNOWN), plain.stderr[-2000:]
    silence_known_third_party_warnings()  # restored by pytest after this test
