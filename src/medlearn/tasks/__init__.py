"""The task registry, and the contract every task keeps.

Every task is a package ``medlearn/tasks/<name>/`` registered here under the name its CLI uses
(``medlearn <name> train|predict|evaluate``). Each has the same parts:

* ``plan.py`` — its :class:`~medlearn.plan.Plan` subclass (sections ``train`` and ``network`` named
  as in every task) and the pure rules ``fingerprint -> plan``, each with a comment giving its evidence;
* data loading for its layouts (the readers themselves live in :mod:`medlearn.data` and :mod:`medlearn.chem`);
* its LightningModule (or scikit-learn estimator) that builds its own network from the plan;
* its model: a :class:`~medlearn.tasks.base.TaskModel` — the scikit-learn-style API class
  (``__init__`` stores, ``fit(data, run_dir)``, ``load(run_dir)``, ``predict*``, ``evaluate(data)``
  writing to ``RUN/evaluations/<name>/``), saved as the one model artefact
  (:mod:`medlearn.io.artifact`, loaded ``weights_only``), with predict / export / serve hooks;
* its evaluator (metrics as ``{"value", "ci95"}`` from :mod:`medlearn.evaluation`) and only its own
  report sections;
* a :class:`~medlearn.tasks.base.Task` whose hooks the one training skeleton
  (:func:`medlearn.engine.workflow.train`) calls.

A task imports no other task, builds no ``Trainer`` (it asks its
:class:`~medlearn.engine.members.MemberJob`), writes no split code (:mod:`medlearn.data.splits`) and no
run-directory file names of its own (:class:`~medlearn.engine.rundir.RunDirectory`). What two tasks
need goes one layer down (``imaging/``, ``chem/``, ``evaluation/``, ``nets/``). A new task is one new
folder here, one line in :data:`TASKS`, and one CLI file.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from medlearn.errors import InputError

if TYPE_CHECKING:
    from medlearn.tasks.base import Task, TaskModel

#: CLI name -> the module that defines ``TASK`` (a :class:`~medlearn.tasks.base.Task`).
TASKS: dict[str, str] = {
    "classify": "medlearn.tasks.classify.task",
    "segment": "medlearn.tasks.segment.task",
    "qsar": "medlearn.tasks.qsar.task",
    "cpi": "medlearn.tasks.cpi.task",
    "generate": "medlearn.tasks.generate.task",
    "register": "medlearn.tasks.register.task",
}


#: Tasks that run through the same skeleton as a sub-command of another (no CLI group of their own).
AUXILIARY: dict[str, str] = {
    "classify-pretrain": "medlearn.tasks.classify.pretrain",
}


def task_names() -> list[str]:
    return list(TASKS)


def get_task(name: str) -> Task:
    """The registered task called ``name`` (imported on first use)."""
    module = TASKS.get(name) or AUXILIARY.get(name)
    if module is None:
        raise InputError("task", f"unknown task '{name}'", f"known tasks: {', '.join(TASKS)}")
    return importlib.import_module(module).TASK


def model_class(name: str) -> type[TaskModel]:
    return get_task(name).model_class
