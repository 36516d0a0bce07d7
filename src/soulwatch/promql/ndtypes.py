"""The numpy array types the array path's modules annotate with.

Only type checkers import numpy here: at run time the names are ``Any``, so
a module may import them whether or not numpy is installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    Ints = NDArray[np.int64]
    Floats = NDArray[np.float64]
    Bools = NDArray[np.bool_]
else:
    Ints = Floats = Bools = Any

__all__ = ["Bools", "Floats", "Ints"]
