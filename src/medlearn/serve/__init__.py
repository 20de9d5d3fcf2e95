"""``medlearn serve``: trained runs behind a local web service, with a web page that shows the results.

Every task is served through the same contract hooks (:mod:`medlearn.tasks.base`): ``describe()`` for
``GET /models``, ``input_kind`` to choose how a request is read (multipart uploads for "image", JSON
records for "smiles" / "pairs" / "count"), and ``serve_predict(ServiceInput, workdir) -> ServiceOutput``
for ``POST /models/{name}/predict``. No branch per task.

Modules: :mod:`~medlearn.serve.app` (the FastAPI application and its routes), :mod:`~medlearn.serve.uploads`
(bounded reading, multipart parsing, format sniffing, DICOM de-identification before anything is written,
zip checks), :mod:`~medlearn.serve.records` (JSON bodies), :mod:`~medlearn.serve.models` (loading runs and
the per-model lock), :mod:`~medlearn.serve.privacy` (what never reaches a response or a log),
:mod:`~medlearn.serve.respond` (JSON and embedded files), :mod:`~medlearn.serve.server` (uvicorn, the
loopback/token rules, logging). The web page is one file, ``static/index.html``.
"""

from medlearn.serve.app import ServiceConfig, create_app

__all__ = ["ServiceConfig", "create_app"]
