"""The worker's HTTP API, shaped like Workspace Manager's (April 2021).

* `POST /api/workspaces/v1` `{id, jobId?, stage?, spendProfile?, displayName?, description?}` →
  submits `WorkspaceCreateFlight` (flight id = job id) on *this* pod and waits for it like
  `JobService.waitForJob` (a poll of the flight state every `polling-interval`; any poll error or
  the timeout becomes a 500 `InternalStairwayException`); 200 `{"id": …}` on success.
* `GET /api/job/v1/jobs/{id}` → JobReport (RUNNING → RUNNING, SUCCESS → SUCCEEDED, anything else
  → FAILED, the 2021 mapping).
* `GET|DELETE /api/workspaces/v1/{id}`, `GET /status` (503 until Stairway is up), `GET /version`.

The caller is `Authorization: Bearer <token>` (or `OIDC_ACCESS_token`), with `OIDC_CLAIM_email`
/ `OIDC_CLAIM_user_id` as the oidc-proxy sets them. The token goes into the flight's
`auth_user_info` input and nowhere else: it is registered with the log redactor.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sandbox.engine.exceptions import (
    DuplicateFlightIdException,
    FlightNotFoundException,
    JavaException,
)
from sandbox.engine.flight import FlightStatus
from sandbox.engine.jackson import UUID_TYPE
from sandbox.engine.stairway import FlightState, Stairway
from sandbox.flights.workspace import (
    HTTP_STATUS,
    WORKSPACE_CREATE_FLIGHT,
    WORKSPACE_DELETE_FLIGHT,
    Keys,
    WorkspaceDao,
    create_inputs,
    delete_inputs,
)
from sandbox.httpserve import LoopbackServer, QuietHandler

STATUS_CODES = {
    "OK": 200,
    "ACCEPTED": 202,
    "NO_CONTENT": 204,
    "BAD_REQUEST": 400,
    "NOT_FOUND": 404,
    "INTERNAL_SERVER_ERROR": 500,
}
DEFAULT_EMAIL = "sandbox.user@test.firecloud.org"


class ApiError(Exception):
    def __init__(self, status: int, message: str, causes: list[str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.causes = causes or []

    def report(self) -> dict[str, Any]:
        return {"message": self.message, "statusCode": self.status, "causes": self.causes}


@dataclass
class User:
    email: str
    subject_id: str
    token: str


@dataclass
class ServiceSettings:
    job_timeout_seconds: float = 1800.0
    job_polling_interval_seconds: float = 1.0
    app_version: str = "sandbox"
    engine_version: str = "0.0.60"
    reader_version: str = "0.0.60"


class JobService:
    """`JobService.submitAndWait` / `waitForJob` / `retrieveJob` of April 2021."""

    def __init__(self, stairway: Stairway, settings: ServiceSettings) -> None:
        self.stairway = stairway
        self.settings = settings
        self.log = logging.getLogger("bio.terra.workspace.service.job.JobService")

    def submit(self, job_id: str, flight_class: str, values: dict[str, Any]) -> None:
        inputs = self.stairway.new_input_map(values)
        try:
            self.stairway.submit(job_id, flight_class, inputs)
        except DuplicateFlightIdException:
            raise ApiError(400, f"Received duplicate jobId {job_id}") from None
        except JavaException as error:
            raise self._internal(error) from None

    def wait_for_job(self, job_id: str) -> FlightState:
        """Poll once per interval until the flight is no longer RUNNING; any error → 500."""
        s = self.settings
        cycles = max(int(s.job_timeout_seconds / s.job_polling_interval_seconds), 1)
        for _ in range(cycles):
            time.sleep(s.job_polling_interval_seconds)
            try:
                state = self.stairway.get_flight_state(job_id)
            except JavaException as error:
                raise self._internal(
                    JavaException(
                        "java.util.concurrent.ExecutionException", error.java_str(), cause=error
                    )
                ) from None
            if not state.status.active:
                return state
        raise ApiError(500, "Flight did not complete in the allowed wait time")

    def _internal(self, error: JavaException) -> ApiError:
        causes = []
        exc: BaseException | None = error
        while isinstance(exc, JavaException):
            causes.append(exc.java_str())
            exc = exc.java_cause
        self.log.error(
            "Global exception handler: cause: bio.terra.workspace.service.job.exception."
            "InternalStairwayException@%x[causes=[],statusCode=500 INTERNAL_SERVER_ERROR], "
            "cause: %s",
            id(error) & 0xFFFFFFF,
            ", cause: ".join(causes),
            extra={
                "java_trace": JavaException(
                    "bio.terra.workspace.service.job.exception.InternalStairwayException",
                    None,
                    cause=error,
                ).trace()
            },
        )
        return ApiError(
            500, "Internal Stairway error: " + (causes[-1] if causes else "unknown"), causes
        )

    def result(self, state: FlightState) -> tuple[int, Any]:
        if state.status != FlightStatus.SUCCESS:
            exc = state.exception
            message = (
                exc.message
                if exc is not None and exc.message
                else (f"Flight {state.flight_id} ended with status {state.status.value}")
            )
            raise ApiError(500, str(message), [exc.java_str()] if exc else [])
        result = state.result_map
        response = result.get(Keys.RESPONSE, UUID_TYPE) if result is not None else None
        code = result.get(Keys.STATUS_CODE, HTTP_STATUS) if result is not None else None
        return STATUS_CODES.get(str(code), 200), response

    def job_report(self, state: FlightState) -> dict[str, Any]:
        if state.status == FlightStatus.RUNNING:
            status, code = "RUNNING", 202
        elif state.status == FlightStatus.SUCCESS:
            status, code = "SUCCEEDED", 200
            if state.result_map is not None:
                try:
                    code = STATUS_CODES.get(
                        str(state.result_map.get(Keys.STATUS_CODE, HTTP_STATUS)), 200
                    )
                except JavaException:
                    code = 200
        else:
            status, code = "FAILED", 500
        try:
            description = state.input_parameters.get(Keys.DESCRIPTION, _string())
        except JavaException:
            description = None
        return {
            "id": state.flight_id,
            "description": description,
            "status": status,
            "statusCode": code,
            "submitted": _iso(state.submitted),
            "completed": _iso(state.completed),
            "resultURL": f"/api/job/v1/jobs/{state.flight_id}/result",
        }


def _string() -> Any:
    from sandbox.engine.jackson import STRING

    return STRING


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if hasattr(value, "strftime") else str(value)


class WorkspaceService:
    def __init__(self, jobs: JobService, dao: WorkspaceDao) -> None:
        self.jobs = jobs
        self.dao = dao

    def create(self, body: dict[str, Any], user: User, request_id: str) -> dict[str, Any]:
        try:
            workspace_id = uuid.UUID(str(body.get("id")))
        except ValueError:
            raise ApiError(400, "Invalid workspace id: " + str(body.get("id"))) from None
        stage = str(body.get("stage") or "RAWLS_WORKSPACE")
        if stage not in ("RAWLS_WORKSPACE", "MC_WORKSPACE"):
            raise ApiError(400, f"Invalid workspace stage: {stage}")
        job_id = str(body.get("jobId") or uuid.uuid4())
        values = create_inputs(
            workspace_id=workspace_id,
            stage=stage,
            user_email=user.email,
            subject_id=user.subject_id,
            token=user.token,
            request_id=request_id,
            spend_profile=body.get("spendProfile"),
            display_name=body.get("displayName"),
            description=body.get("description"),
            mdc=json.dumps({"requestId": request_id}, separators=(",", ":")),
        )
        self.jobs.submit(job_id, WORKSPACE_CREATE_FLIGHT, values)
        state = self.jobs.wait_for_job(job_id)
        _, response = self.jobs.result(state)
        return {"id": str(response)}

    def delete(self, workspace_id: str, user: User, request_id: str) -> None:
        try:
            wid = uuid.UUID(workspace_id)
        except ValueError:
            raise ApiError(400, "Invalid workspace id: " + workspace_id) from None
        if self.dao.get_workspace(str(wid)) is None:
            raise ApiError(404, f"Workspace {wid} not found.")
        job_id = str(uuid.uuid4())
        self.jobs.submit(
            job_id,
            WORKSPACE_DELETE_FLIGHT,
            delete_inputs(
                workspace_id=wid,
                user_email=user.email,
                subject_id=user.subject_id,
                token=user.token,
                request_id=request_id,
            ),
        )
        self.jobs.result(self.jobs.wait_for_job(job_id))

    def get(self, workspace_id: str) -> dict[str, Any]:
        try:
            wid = uuid.UUID(workspace_id)
        except ValueError:
            raise ApiError(400, "Invalid workspace id: " + workspace_id) from None
        ws = self.dao.get_workspace(str(wid))
        if ws is None:
            raise ApiError(404, f"Workspace {wid} not found.")
        return {
            "id": ws.workspace_id,
            "spendProfile": ws.spend_profile,
            "stage": ws.stage,
            "displayName": ws.display_name,
            "description": ws.description,
            "gcpContext": None,
        }


_WS = re.compile(r"^/api/workspaces/v1/([^/]+)$")
_JOB = re.compile(r"^/api/job/v1/jobs/([^/]+)$")


class ServiceApp:
    """Routes + the status flag; `ServiceServer` serves it on a loopback port."""

    def __init__(
        self,
        jobs: JobService,
        workspaces: WorkspaceService,
        settings: ServiceSettings,
        redactor_add: Callable[[str], None],
    ) -> None:
        self.jobs = jobs
        self.workspaces = workspaces
        self.settings = settings
        self.redactor_add = redactor_add
        self.ready = threading.Event()
        self.failed: str | None = None
        self.request_log = logging.getLogger("bio.terra.common.logging.RequestLoggingFilter")

    def user(self, headers: Any) -> User:
        auth = headers.get("Authorization") or ""
        token = (
            auth[7:].strip()
            if auth.lower().startswith("bearer ")
            else (headers.get("OIDC_ACCESS_token") or "")
        )
        if not token:
            raise ApiError(401, "Unauthorized: no bearer token in the request")
        self.redactor_add(token)
        email = headers.get("OIDC_CLAIM_email") or DEFAULT_EMAIL
        subject = (
            headers.get("OIDC_CLAIM_user_id")
            or str(int(hashlib.sha256(email.encode()).hexdigest()[:15], 16))[:21]
        )
        return User(email, subject, token)

    def handle(
        self, method: str, path: str, headers: Any, body: bytes, request_id: str
    ) -> tuple[int, Any]:
        path = path.split("?", 1)[0]
        if method == "GET" and path == "/status":
            ok = self.ready.is_set() and self.failed is None
            return (200 if ok else 503), {
                "ok": ok,
                "systems": {
                    "Stairway": {"ok": ok, "messages": [self.failed] if self.failed else []}
                },
            }
        if method == "GET" and path == "/version":
            s = self.settings
            return 200, {
                "gitTag": s.app_version,
                "gitHash": "sandbox",
                "github": "https://github.com/DataBiosphere/terra-workspace-manager",
                "build": s.app_version,
                "stairwayVersion": s.engine_version,
                "stairwayReaderVersion": s.reader_version,
            }
        if not self.ready.is_set():
            raise ApiError(503, "Service is starting")
        if method == "POST" and path == "/api/workspaces/v1":
            user = self.user(headers)
            try:
                payload = json.loads(body or b"{}")
            except json.JSONDecodeError as error:
                raise ApiError(400, f"Malformed JSON: {error}") from None
            return 200, self.workspaces.create(payload, user, request_id)
        m = _WS.match(path)
        if m and method == "GET":
            self.user(headers)
            return 200, self.workspaces.get(m.group(1))
        if m and method == "DELETE":
            self.workspaces.delete(m.group(1), self.user(headers), request_id)
            return 204, None
        m = _JOB.match(path)
        if m and method == "GET":
            self.user(headers)
            try:
                state = self.jobs.stairway.get_flight_state(m.group(1))
            except FlightNotFoundException:
                raise ApiError(404, f"Job not found: {m.group(1)}") from None
            return 200, self.jobs.job_report(state)
        raise ApiError(404, f"No handler for {method} {path}")


class ServiceServer(LoopbackServer):
    thread_name = "http-nio-8080-Acceptor"

    def __init__(self, app: ServiceApp, port: int = 0) -> None:
        self.app = app
        outer = self
        self._counter = 0
        self._lock = threading.Lock()

        class Handler(QuietHandler):
            server_version = "sandbox-workspacemanager"

            def _serve(self, method: str) -> None:
                threading.current_thread().name = outer._thread_name()
                started = time.monotonic()
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request_id = self.headers.get("X-Request-ID") or str(uuid.uuid4())
                try:
                    status, payload = outer.app.handle(
                        method, self.path, self.headers, body, request_id
                    )
                except ApiError as error:
                    status, payload = error.status, error.report()
                except Exception as error:  # the Global exception handler
                    logging.getLogger(
                        "bio.terra.workspace.app.controller.GlobalExceptionHandler"
                    ).exception("Global exception handler: %s", error)
                    status, payload = 500, {"message": str(error), "statusCode": 500, "causes": []}
                data = b"" if payload is None else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.send_header("X-Request-ID", request_id)
                    self.end_headers()
                    if data:
                        self.wfile.write(data)
                except OSError:
                    pass
                latency = time.monotonic() - started
                outer.app.request_log.info(
                    "%s %s %s",
                    method,
                    self.path,
                    status,
                    extra={
                        "http_request": {
                            "requestMethod": method,
                            "requestUrl": self.path,
                            "status": status,
                            "responseSize": str(len(data)),
                            "userAgent": self.headers.get("User-Agent", ""),
                            "remoteIp": self.client_address[0],
                            "latency": f"{latency:.6f}s",
                            "protocol": self.request_version,
                        },
                        "mdc": {"requestId": request_id},
                    },
                )

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def do_DELETE(self) -> None:
                self._serve("DELETE")

        super().__init__(Handler, port)

    def _thread_name(self) -> str:
        with self._lock:
            self._counter += 1
            return f"http-nio-8080-exec-{self._counter}"
