"""Known warnings of third-party libraries, silenced by the command line (never in tests).

Two kinds: Python warnings (:data:`KNOWN`) and log records a library writes at import (:data:`KNOWN_LOGS`).
Each entry says where it comes from, so it can be dropped once the library is fixed. A warning bdcore's own
code causes is fixed at its source, not listed here. The test suite keeps every warning visible:
:func:`silence_known_third_party_warnings` runs in the ``bdcore`` command (and its sweep workers) only.
"""

from __future__ import annotations

import logging
import re
import warnings

#: (category, regex matched against the start of the message, where it comes from)
KNOWN: tuple[tuple[type[Warning], str, str], ...] = (
    (
        FutureWarning,
        r"`torch\.jit\.script` is deprecated",
        "torch_geometric calls torch.jit.script at import; compressai (bd-plugin-bavaft's codecs) imports "
        "torch_geometric for its point-cloud datasets, so every run with a compressai victim printed it",
    ),
)

#: (logger name, regex matched against the start of the formatted message, where it comes from)
KNOWN_LOGS: tuple[tuple[str, str, str], ...] = (
    (
        "bitsandbytes.backends.cpu.ops",
        r"Failed to load CPU gemm_4bit_forward from kernels-community",
        "diffusers imports bitsandbytes, which on a CPU with AVX512-BF16 asks the kernels hub for a 4-bit "
        "GEMM kernel and logs a warning (with advice to trust remote code) when it cannot; bdcore never runs "
        "4-bit layers, so every run with a diffusers prior (bd-plugin-diffpure) printed it",
    ),
)


class _DropMatching(logging.Filter):
    """Drops the records whose message matches ``pattern`` (re.match); keeps every other record."""

    def __init__(self, pattern: str) -> None:
        super().__init__()
        self.pattern = re.compile(pattern)

    def filter(self, record: logging.LogRecord) -> bool:
        return self.pattern.match(record.getMessage()) is None


def silence_known_third_party_warnings() -> None:
    """Ignore :data:`KNOWN` and :data:`KNOWN_LOGS` for the rest of the process (the ``bdcore`` command line).

    Logger filters are attached by name, so they hold for a library imported later. Calling it twice adds
    nothing twice.
    """
    for category, message, _ in KNOWN:
        warnings.filterwarnings("ignore", message=message, category=category)
    for name, message, _ in KNOWN_LOGS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMatching) and f.pattern.pattern == message for f in logger.filters):
            logger.addFilter(_DropMatching(message))
