"""The public API is a reviewed decision: this test locks it."""

import soulwatch


def test_public_api_is_locked() -> None:
    assert soulwatch.__all__ == sorted(soulwatch.__all__)
    assert soulwatch.__all__ == [
        "Clock",
        "SimulatedClock",
        "SoulwatchError",
        "SystemClock",
        "__version__",
    ]
