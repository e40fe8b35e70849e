"""``[data] verify = true`` on CUFS: every pair decoded once at indexing, unreadable files named."""

import numpy as np
import pytest
from bdcore.context import Context
from bdcore.errors import DataError
from PIL import Image

from bd_plugin_sketch.data import Cufs
from bd_plugin_sketch.params import CufsParams


def test_cufs_verify_names_an_unreadable_sketch(tmp_path):
    """``[data] verify = true`` decodes every CUFS pair at indexing and names the unreadable file."""
    for split in ("training", "testing"):
        (tmp_path / f"{split}_photo").mkdir()
        (tmp_path / f"{split}_sketch").mkdir()
        for i in range(2):
            Image.fromarray(np.full((16, 16, 3), 90 + i, np.uint8)).save(tmp_path / f"{split}_photo" / f"f-{i}.jpg")
            Image.fromarray(np.full((16, 16), 200, np.uint8)).save(tmp_path / f"{split}_sketch" / f"f-{i}-sz1.jpg")
    (tmp_path / "testing_sketch" / "f-1-sz1.jpg").write_bytes(b"not a jpeg")
    params = CufsParams(root=tmp_path)
    assert len(Cufs(params, Context(seed=0)).splits()["test"]) == 2  # indexing alone decodes nothing
    with pytest.raises(DataError, match=r"(?s)1 of 2 items are unreadable.*f-1\.jpg.*f-1-sz1\.jpg"):
        Cufs(params, Context(seed=0, options={"verify": True})).splits()
