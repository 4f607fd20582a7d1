"""taskaffinity: estimate which tasks help each other and group them.

The engine (this package) has no Streamlit dependency: use it from Python or
through ``python -m core`` (see ``python -m core --help``).
"""
from core.matrix.affinity import AffinityMatrix
from core.errors import InvalidInputError, RunStateError, TaskAffinityError, UnknownNameError
from core.matrix.io import read_affinity, write_affinity
from core.matrix.preprocess import Preprocessing

__version__ = "0.1.0"

__all__ = [
    "AffinityMatrix",
    "InvalidInputError",
    "Preprocessing",
    "RunStateError",
    "TaskAffinityError",
    "UnknownNameError",
    "read_affinity",
    "write_affinity",
]
