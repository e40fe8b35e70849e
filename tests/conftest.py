import sys
from pathlib import Path

from bdcore.testing.fixtures import *  # noqa: F403 - bdcore's own fixtures

# Test plugins (tests/plugins/*.py) are importable as top-level modules.
sys.path.insert(0, str(Path(__file__).parent / "plugins"))
