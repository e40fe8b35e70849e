"""Known deprecation warnings of third-party libraries, silenced by the command line (never in tests).

Each entry says where the warning comes from, so it can be dropped once the library is fixed. A warning
bdcore's own code causes is fixed at its source, not listed here. The test suite keeps every warning
visible: :func:`silence_known_third_party_warnings` runs in the ``bdcore`` command only.
"""

from __future__ import annotations

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


def silence_known_third_party_warnings() -> None:
    """Ignore the warnings in :data:`KNOWN` for the rest of the process (the ``bdcore`` command line)."""
    for category, message, _ in KNOWN:
        warnings.filterwarnings("ignore", message=message, category=category)
