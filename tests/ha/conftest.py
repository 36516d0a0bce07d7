"""Fixtures of the HA tests."""

from tests.ha.pair_support import world  # noqa: F401 - the fixture, for every test here
