"""The decision service of one exported policy (FastAPI): ``POST /v1/decide``, ``GET /v1/card``,
``GET /healthz``.

:func:`create_app` loads the export directory it is given, checking its hashes and schema, and
serves that artifact only: no request names a file. Bodies are validated against the card
(:mod:`winback.serve.schemas`); a refused body is a 422 whose ``detail`` lists each problem with
the dotted ``field`` it is about (``users.0.features.interest``), the ``message`` and its ``type``.
"""

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

import winback
from winback.checked_json import with_hash
from winback.export.runtime.artifact import ExportedArtifact, LimitsError
from winback.serve.decide import Decider
from winback.serve.schemas import FORMS, request_model


def create_app(artifact_dir: str | Path) -> FastAPI:
    """The service of the exported policy in ``artifact_dir`` (raises ``ArtifactError`` if it is refused)."""
    artifact = ExportedArtifact.load(artifact_dir)
    decider = Decider(artifact)
    DecideRequest = request_model(artifact.card)
    card = with_hash(artifact.card)  # the card as verified at load, not re-read from disk
    identity = {
        "policy": artifact.name,
        "policy_sha256": artifact.card["files"]["policy.onnx"]["sha256"],
        "winback_version": winback.__version__,
    }
    app = FastAPI(
        title="winback decision service",
        version=winback.__version__,
        summary=f"Win-back decisions of {artifact.name} (scenario '{artifact.card['scenario']['name']}').",
    )
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        """Liveness, and which artifact is served."""
        return {"status": "ok", **identity}

    @app.get("/v1/card")
    async def get_card() -> JSONResponse:
        """The policy card, as exported."""
        return JSONResponse(content=card)

    @app.post("/v1/decide", response_model=None)
    async def decide(request: DecideRequest) -> dict[str, Any] | JSONResponse:  # type: ignore[valid-type]
        """Action, its probability, scores, probabilities and masks for each user of the batch
        (:mod:`winback.serve.schemas`; the card's ``policy.outputs`` states what each is)."""
        try:
            answer = decider.decide(request.users, request.limits, request.prices)  # type: ignore[attr-defined]
        except LimitsError as err:
            problem = {"field": "limits", "message": str(err), "type": "value_error"}
            return JSONResponse(status_code=422, content={"detail": [problem]})
        return {**answer, **identity}

    return app


async def _validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    return JSONResponse(status_code=422, content={"detail": [_problem(e) for e in error.errors()]})


def _problem(error: dict[str, Any]) -> dict[str, Any]:
    """An error of the request body with its location as a dotted field name, without the form tag."""
    loc = list(error["loc"])
    if loc[:1] == ["body"]:
        loc = loc[1:]
    if len(loc) >= 3 and loc[0] == "users" and isinstance(loc[1], int) and loc[2] in FORMS:
        del loc[2]
    return {"field": ".".join(str(part) for part in loc), "message": error["msg"], "type": error["type"]}
