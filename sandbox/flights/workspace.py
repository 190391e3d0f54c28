"""Workspace Manager's April-2021 workspace flights, with the inputs' real keys and Java types.

`WorkspaceCreateFlight` reads `workspaceStage` as the `WorkspaceStage` enum in its constructor
(WorkspaceCreateFlight.java:22, before WSM PR #284) — the read that a ≤0.0.60 engine fails on
when the flight is rebuilt from the database. Step 0 is the authz step (Sam: a resource row in
this sandbox), step 1 creates the workspace row in the service's own database; both undo.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, text

from sandbox.engine.flight import Flight, FlightContext, Step, StepResult
from sandbox.engine.flightmap import FlightMap
from sandbox.engine.jackson import (
    CATALOG,
    STRING,
    UUID_TYPE,
    JavaEnumType,
    PojoType,
)

PKG = "bio.terra.workspace.service.workspace"
WORKSPACE_CREATE_FLIGHT = f"{PKG}.flight.WorkspaceCreateFlight"
WORKSPACE_DELETE_FLIGHT = f"{PKG}.flight.WorkspaceDeleteFlight"

WORKSPACE_STAGE = JavaEnumType(
    f"{PKG}.model.WorkspaceStage", constants=("RAWLS_WORKSPACE", "MC_WORKSPACE")
)
AUTHENTICATED_USER_REQUEST = PojoType(
    "bio.terra.workspace.service.iam.AuthenticatedUserRequest",
    fields=("email", "subjectId", "token", "reqId"),
)
HTTP_STATUS = JavaEnumType(
    "org.springframework.http.HttpStatus",
    constants=("OK", "ACCEPTED", "NO_CONTENT", "BAD_REQUEST", "NOT_FOUND", "INTERNAL_SERVER_ERROR"),
)
CATALOG.register(WORKSPACE_STAGE, AUTHENTICATED_USER_REQUEST, HTTP_STATUS)


class Keys:
    """JobMapKeys + WorkspaceFlightMapKeys."""

    DESCRIPTION = "description"
    REQUEST = "request"
    AUTH_USER_INFO = "auth_user_info"
    SUBJECT_ID = "subjectId"
    MDC = "mdcKey"
    RESPONSE = "response"
    STATUS_CODE = "status_code"
    WORKSPACE_ID = "workspaceId"
    SPEND_PROFILE_ID = "spendProfileId"
    WORKSPACE_STAGE = "workspaceStage"
    DISPLAY_NAME = "displayNameId"
    DESCRIPTION_ID = "descriptionId"


WSM_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS workspace (workspace_id uuid PRIMARY KEY, display_name text,"
    " description text, spend_profile text, workspace_stage text NOT NULL, properties jsonb,"
    " created_date timestamptz NOT NULL DEFAULT now())",
    # Sam is an external service; the sandbox keeps its resources in a table of its own
    "CREATE TABLE IF NOT EXISTS sam_resource (resource_type text NOT NULL, resource_id text NOT"
    " NULL, owner_email text NOT NULL, created_date timestamptz NOT NULL DEFAULT now(),"
    " CONSTRAINT pk_sam_resource PRIMARY KEY (resource_type, resource_id))",
)


@dataclass
class Workspace:
    workspace_id: str
    display_name: str | None
    description: str | None
    spend_profile: str | None
    stage: str


class WorkspaceDao:
    """The service's own database (not the Stairway database)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create_schema(self) -> None:
        with self.engine.begin() as conn:
            for stmt in WSM_SCHEMA:
                conn.execute(text(stmt))

    def create_workspace(self, ws: Workspace) -> bool:
        with self.engine.begin() as conn:
            return bool(
                conn.execute(
                    text(
                        "INSERT INTO workspace (workspace_id, display_name, description,"
                        " spend_profile, workspace_stage) VALUES (:id, :name, :description,"
                        " :spend, :stage) ON CONFLICT (workspace_id) DO NOTHING"
                    ),
                    {
                        "id": ws.workspace_id,
                        "name": ws.display_name,
                        "description": ws.description,
                        "spend": ws.spend_profile,
                        "stage": ws.stage,
                    },
                ).rowcount
            )

    def delete_workspace(self, workspace_id: str) -> bool:
        with self.engine.begin() as conn:
            return bool(
                conn.execute(
                    text("DELETE FROM workspace WHERE workspace_id = :id"), {"id": workspace_id}
                ).rowcount
            )

    def get_workspace(self, workspace_id: str) -> Workspace | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT workspace_id, display_name, description, spend_profile,"
                    " workspace_stage FROM workspace WHERE workspace_id = :id"
                ),
                {"id": workspace_id},
            ).first()
        if row is None:
            return None
        return Workspace(str(row[0]), row[1], row[2], row[3], str(row[4]))

    def create_sam_resource(self, workspace_id: str, owner_email: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO sam_resource (resource_type, resource_id, owner_email) VALUES"
                    " ('workspace', :id, :email) ON CONFLICT DO NOTHING"
                ),
                {"id": workspace_id, "email": owner_email},
            )

    def delete_sam_resource(self, workspace_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "DELETE FROM sam_resource WHERE resource_type = 'workspace' AND"
                    " resource_id = :id"
                ),
                {"id": workspace_id},
            )


@dataclass
class FlightBeanBag:
    """WSM's `FlightBeanBag`: what steps get from the application context."""

    workspace_dao: WorkspaceDao


def _bean_bag(app: Any) -> FlightBeanBag:
    assert isinstance(app, FlightBeanBag)
    return app


log = logging.getLogger("bio.terra.workspace.service.workspace.flight")


class CreateWorkspaceAuthzStep(Step):
    java_class = f"{PKG}.flight.CreateWorkspaceAuthzStep"

    def __init__(self, dao: WorkspaceDao, user: Any) -> None:
        self.dao = dao
        self.user = user

    def do_step(self, context: FlightContext) -> StepResult:
        workspace_id = context.input_parameters.get(Keys.WORKSPACE_ID, UUID_TYPE)
        self.dao.create_sam_resource(str(workspace_id), str(self.user["email"]))
        return StepResult.ok()

    def undo_step(self, context: FlightContext) -> StepResult:
        workspace_id = context.input_parameters.get(Keys.WORKSPACE_ID, UUID_TYPE)
        self.dao.delete_sam_resource(str(workspace_id))
        return StepResult.ok()


class CheckSamWorkspaceAuthzStep(Step):
    """RAWLS_WORKSPACE: Rawls created the Sam resource; WSM only checks it can read it."""

    java_class = f"{PKG}.flight.CheckSamWorkspaceAuthzStep"

    def __init__(self, dao: WorkspaceDao, user: Any) -> None:
        self.dao = dao
        self.user = user

    def do_step(self, context: FlightContext) -> StepResult:
        return StepResult.ok()


class CreateWorkspaceStep(Step):
    java_class = f"{PKG}.flight.CreateWorkspaceStep"

    def __init__(self, dao: WorkspaceDao) -> None:
        self.dao = dao

    def do_step(self, context: FlightContext) -> StepResult:
        inputs = context.input_parameters
        workspace_id = inputs.get(Keys.WORKSPACE_ID, UUID_TYPE)
        stage = inputs.get(Keys.WORKSPACE_STAGE, WORKSPACE_STAGE)
        self.dao.create_workspace(
            Workspace(
                str(workspace_id),
                inputs.get(Keys.DISPLAY_NAME, STRING) or None,
                inputs.get(Keys.DESCRIPTION_ID, STRING) or None,
                inputs.get(Keys.SPEND_PROFILE_ID, STRING),
                str(stage),
            )
        )
        # FlightUtils.setResponse(context, workspaceId, HttpStatus.OK)
        context.working_map.put(Keys.RESPONSE, workspace_id)
        context.working_map.put(Keys.STATUS_CODE, HTTP_STATUS("OK"))
        return StepResult.ok()

    def undo_step(self, context: FlightContext) -> StepResult:
        workspace_id = context.input_parameters.get(Keys.WORKSPACE_ID, UUID_TYPE)
        self.dao.delete_workspace(str(workspace_id))
        return StepResult.ok()


class WorkspaceCreateFlight(Flight):
    java_class = WORKSPACE_CREATE_FLIGHT
    java_init_line = 22

    def __init__(self, input_parameters: FlightMap, application_context: Any) -> None:
        super().__init__(input_parameters, application_context)
        bag = _bean_bag(application_context)
        user = input_parameters.get(Keys.AUTH_USER_INFO, AUTHENTICATED_USER_REQUEST)
        stage = input_parameters.get(Keys.WORKSPACE_STAGE, WORKSPACE_STAGE)
        if stage.name == "MC_WORKSPACE":
            self.add_step(CreateWorkspaceAuthzStep(bag.workspace_dao, user))
        elif stage.name == "RAWLS_WORKSPACE":
            self.add_step(CheckSamWorkspaceAuthzStep(bag.workspace_dao, user))
        else:  # pragma: no cover - the enum has two constants
            from sandbox.engine.exceptions import JavaException

            raise JavaException(
                "bio.terra.workspace.common.exception.InternalLogicException",
                f"Unknown workspace stage during creation: {stage.name}",
            )
        self.add_step(CreateWorkspaceStep(bag.workspace_dao))


class DeleteWorkspaceAuthzStep(Step):
    java_class = f"{PKG}.flight.DeleteWorkspaceAuthzStep"

    def __init__(self, dao: WorkspaceDao) -> None:
        self.dao = dao

    def do_step(self, context: FlightContext) -> StepResult:
        workspace_id = context.input_parameters.get(Keys.WORKSPACE_ID, UUID_TYPE)
        self.dao.delete_sam_resource(str(workspace_id))
        return StepResult.ok()


class DeleteWorkspaceStateStep(Step):
    java_class = f"{PKG}.flight.DeleteWorkspaceStateStep"

    def __init__(self, dao: WorkspaceDao) -> None:
        self.dao = dao

    def do_step(self, context: FlightContext) -> StepResult:
        workspace_id = context.input_parameters.get(Keys.WORKSPACE_ID, UUID_TYPE)
        self.dao.delete_workspace(str(workspace_id))
        context.working_map.put(Keys.STATUS_CODE, HTTP_STATUS("NO_CONTENT"))
        return StepResult.ok()


class WorkspaceDeleteFlight(Flight):
    java_class = WORKSPACE_DELETE_FLIGHT
    java_init_line = 19

    def __init__(self, input_parameters: FlightMap, application_context: Any) -> None:
        super().__init__(input_parameters, application_context)
        bag = _bean_bag(application_context)
        input_parameters.get(Keys.AUTH_USER_INFO, AUTHENTICATED_USER_REQUEST)
        self.add_step(DeleteWorkspaceAuthzStep(bag.workspace_dao))
        self.add_step(DeleteWorkspaceStateStep(bag.workspace_dao))


FLIGHTS: dict[str, type[Flight]] = {
    WORKSPACE_CREATE_FLIGHT: WorkspaceCreateFlight,
    WORKSPACE_DELETE_FLIGHT: WorkspaceDeleteFlight,
}


def create_inputs(
    *,
    workspace_id: uuid.UUID,
    stage: str,
    user_email: str,
    subject_id: str,
    token: str,
    request_id: str,
    spend_profile: str | None = None,
    display_name: str | None = None,
    description: str | None = None,
    mdc: str = "null",
) -> dict[str, Any]:
    """The input map `WorkspaceService.createWorkspace` + `JobService.newJob` build (2021)."""
    values: dict[str, Any] = {
        Keys.DESCRIPTION: f"Create workspace {workspace_id}",
        Keys.REQUEST: None,
        Keys.AUTH_USER_INFO: AUTHENTICATED_USER_REQUEST(
            email=user_email, subjectId=subject_id, token=token, reqId=request_id
        ),
        Keys.SUBJECT_ID: subject_id,
        Keys.MDC: mdc,
        Keys.WORKSPACE_ID: workspace_id,
        Keys.WORKSPACE_STAGE: WORKSPACE_STAGE(stage),
        Keys.DISPLAY_NAME: display_name or "",
        Keys.DESCRIPTION_ID: description or "",
    }
    if spend_profile:
        values[Keys.SPEND_PROFILE_ID] = spend_profile
    return values


def delete_inputs(
    *,
    workspace_id: uuid.UUID,
    user_email: str,
    subject_id: str,
    token: str,
    request_id: str,
    mdc: str = "null",
) -> dict[str, Any]:
    return {
        Keys.DESCRIPTION: f"Delete workspace {workspace_id}",
        Keys.REQUEST: None,
        Keys.AUTH_USER_INFO: AUTHENTICATED_USER_REQUEST(
            email=user_email, subjectId=subject_id, token=token, reqId=request_id
        ),
        Keys.SUBJECT_ID: subject_id,
        Keys.MDC: mdc,
        Keys.WORKSPACE_ID: workspace_id,
    }
