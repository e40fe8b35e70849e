"""The ``bdcore`` command silences the known third-party deprecation warnings (and only those); the tests
keep every warning (pytest restores the filters after each test)."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import warnings

import pytest
from click.testing import CliRunner

import bdcore.cli as cli
from bdcore.third_party_warnings import KNOWN, KNOWN_LOGS, silence_known_third_party_warnings


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


def test_known_log_records_are_dropped_and_others_kept(caplog: pytest.LogCaptureFixture) -> None:
    """The bitsandbytes import-time record goes; another record of that logger, and its text elsewhere, stay."""
    name = "bitsandbytes.backends.cpu.ops"
    logger = logging.getLogger(name)
    before = list(logger.filters)
    try:
        silence_known_third_party_warnings()
        silence_known_third_party_warnings()  # idempotent: one filter, not two
        ours = [f for f in logger.filters if getattr(getattr(f, "pattern", None), "pattern", None) == KNOWN_LOGS[0][1]]
        assert len(ours) == 1
        with caplog.at_level(logging.WARNING):
            logger.warning(
                "Failed to load CPU gemm_4bit_forward from kernels-community: %s. Please make sure ...", "trust"
            )
            logger.warning("a real problem in bitsandbytes")
            logging.getLogger("bdcore").warning("Failed to load CPU gemm_4bit_forward from kernels-community")
        messages = [(r.name, r.getMessage()) for r in caplog.records]
        assert (name, "a real problem in bitsandbytes") in messages
        assert ("bdcore", "Failed to load CPU gemm_4bit_forward from kernels-community") in messages
        assert not any(n == name and m.startswith("Failed to load") for n, m in messages)
        assert {n for n, _, _ in KNOWN_LOGS} == {name}
    finally:
        logger.filters[:] = before


def test_the_log_filter_silences_what_bitsandbytes_really_logs() -> None:
    """Importing bitsandbytes (as diffusers does) logs the kernels-hub warning on AVX512-BF16 CPUs; silenced, not."""
    pytest.importorskip("bitsandbytes")
    probe = "import bitsandbytes"
    silence = "from bdcore.third_party_warnings import silence_known_third_party_warnings as s; s(); "
    plain = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    silenced = subprocess.run([sys.executable, "-c", silence + probe], capture_output=True, text=True, timeout=300)
    assert plain.returncode == 0 and silenced.returncode == 0, plain.stderr[-2000:] + silenced.stderr[-2000:]
    assert "gemm_4bit_forward" not in silenced.stderr, silenced.stderr[-2000:]
    if "gemm_4bit_forward" in plain.stderr:  # this CPU triggers it: it is the record we list
        assert any(re.match(message, line) for _, message, _ in KNOWN_LOGS for line in plain.stderr.splitlines())
