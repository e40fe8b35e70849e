from bdcore.testing.fixtures import *  # noqa: F403 - bdcore's fixtures for plugin tests
