"""stairway-ops ops library: environments, platforms (GKE and the local sandbox), Ansible glue.

``tasks.py`` is a thin Invoke layer over this package. The dependency direction is one way:
``tasks.py -> opskit -> repairtool``.
"""

__version__ = "0.1.0"
