# --8<-- [start:conftest]
from bdcore.testing.fixtures import *
# --8<-- [end:conftest]
