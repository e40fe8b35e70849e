from bdcore.testing.fixtures import *  # noqa: F403
