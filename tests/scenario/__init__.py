"""Tests of scenario files: soulwatch test scenario."""
