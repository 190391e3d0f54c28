"""Failure experiments (``inv experiment NAME``), as a Chaos Toolkit run with a Litmus verdict.

One module per concern, each importable on its own:

- :mod:`~opskit.experiment.definition`: ``experiments/<name>.yaml`` as validated data;
- :mod:`~opskit.experiment.stage`: where it runs (a sandbox of its own, or a GKE namespace);
- :mod:`~opskit.experiment.commands`: the commands an operator would type, run as real
  processes and recorded for the journal;
- :mod:`~opskit.experiment.tools`: those commands (``inv run-test``, ``inv kill-pod``,
  ``repairtool …``), each writing a machine-readable result the experiment reads back;
- :mod:`~opskit.experiment.db`: the experiment's own database access and its SQL evidence;
- :mod:`~opskit.experiment.lab`: what every step works with (:class:`~opskit.experiment.lab.Lab`)
  and hands on (the submitted flight, the timeline);
- :mod:`~opskit.experiment.faults`: one class per fault (kill the owner, kill an idle pod,
  drop the database connections, a dependency outage), each returning a typed result; the
  multi-step faults are sandbox switches set from the definition (``method.switches``);
- :mod:`~opskit.experiment.podwatch`: the pods' lifetimes during an attempt (a pod watch);
- :mod:`~opskit.experiment.latency`: resume latency after the owner's death (pure);
- :mod:`~opskit.experiment.observe`: what an attempt saw (engine log lines, the flight row,
  the pod that recovered it);
- :mod:`~opskit.experiment.repair`: ``repairtool orphans`` dry run, the repair steps
  (``orphans --fix``, ``recover …``, ``inv restart``), audit, re-check;
- :mod:`~opskit.experiment.verdict`: :func:`~opskit.experiment.verdict.judge` (pure);
- :mod:`~opskit.experiment.narrative`: what happened and the root cause, as prose (pure);
- :mod:`~opskit.experiment.record`: the journal (``stairway-ops.journal/1``) built from it all;
- :mod:`~opskit.experiment.runner`: the sequence only — steady state → method → observe →
  repair → verdict → journal.

This package module re-exports the definition's API only; import the runner from
:mod:`opskit.experiment.runner` (it needs the platform, the sandbox and the database).
"""

from opskit.experiment.definition import (
    ExperimentDefinition,
    ExperimentError,
    UnknownExperiment,
    experiments_dir,
    list_definitions,
    load_definition,
    load_definition_file,
)

__all__ = [
    "ExperimentDefinition",
    "ExperimentError",
    "UnknownExperiment",
    "experiments_dir",
    "list_definitions",
    "load_definition",
    "load_definition_file",
]
