"""stairway-ops tasks for Invoke: ``inv --list`` is the menu, ``inv --help TASK`` explains one.

The collection lives in :mod:`opskit.tasks` (importable and tested like any module); this file
only hands it to ``inv``.
"""

from opskit.tasks import ns

__all__ = ["ns"]
