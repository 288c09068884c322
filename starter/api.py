"""The HTTP service (`python -m starter api`): officers' worklists and alerts from the store,
case summaries, and every message of the message table sent to the case through Temporal, so
a service in any language drives a case over HTTP. OpenAPI at /openapi.json, docs at /docs.
An officer's page at /officer (server-rendered, no build step).

The message endpoints are made from `domain.messages.MESSAGES`: one
`POST /cases/{reference}/messages/{name}` per row, whose body is the row's request model less
`actor` (the acting officer, from authentication) and with `request_id` optional (a random
one when absent; send your own to make a retry safe). A message added to the table gets its
endpoint with no change here.

Authentication: `starter.api_auth` (bearer tokens per calling service, hashed at rest). The
officer page also takes the token from a cookie set by its login form.

No `from __future__ import annotations` here: FastAPI reads the endpoints' annotations, and
those of the generated message endpoints are built at run time.
"""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, cast

from fastapi import Body, Depends, FastAPI, Form, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from jinja2 import Environment, select_autoescape
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic_core import ErrorDetails
from sqlalchemy import Engine
from temporalio.service import RPCError, RPCStatusCode

from domain.alert_templates import INDICATOR_LABELS, uk_time
from domain.messages import MESSAGES, Message
from models.activities import CaseRecord
from models.bounds import describe_error, describe_validation_error
from models.case import Owner
from models.config import Configuration, Key
from starter.api_auth import ACTING_HEADER, TokenEntry, Tokens
from starter.client import CaseClient, CaseUnavailableError, RequestRefusedError, new_request_id
from store import repository
from store.directory import DirectoryCache, today_london
from store.repository import AlertRow
from store.worklist import WorkItem, open_work

COOKIE = "casework_token"

# Refusal codes by HTTP status; any other refusal is 409 Conflict (the case's state forbids it).
_STATUS_OF_CODE: dict[str, int] = {
    "unknown_actor": 403,
    "actor_disabled": 403,
    "not_permitted": 403,
    "invalid_request": 422,
    "case_busy": 503,
    "case_not_open_yet": 503,
}


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Caller:
    service: str
    officer: Key


class Me(BaseModel):
    service: str
    officer: Key
    display_name: str
    roles: list[Key]


class MarkRead(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: list[int] = Field(max_length=1000, description="alert ids to mark read")


class Marked(BaseModel):
    marked: int


def _body_model(msg: Message[Any]) -> type[BaseModel]:
    """The request body of `msg` over HTTP: its request model without `actor`, with
    `request_id` optional."""
    fields: dict[str, Any] = {}
    for name, info in msg.request.model_fields.items():
        if name == "actor":
            continue
        if name == "request_id":
            fields[name] = (
                str | None,
                Field(
                    default=None,
                    max_length=100,
                    description="idempotency key: a repeat changes nothing (default: random)",
                ),
            )
            continue
        fields[name] = (info.annotation, info)
    model: type[BaseModel] = create_model(
        f"{msg.request.__name__}Body",
        __config__=ConfigDict(extra="forbid"),
        __doc__=msg.description,
        **fields,
    )
    return model


def create_app(
    engine: Engine,
    tokens: Tokens,
    cases: Callable[[], Awaitable[CaseClient]],
) -> FastAPI:
    """The service over `engine` (the store), with `tokens` for authentication and `cases`
    giving the client messages are sent through (called on first use)."""
    app = FastAPI(
        title="Housing options casework",
        version="1",
        description="Worklists, alerts and case messages. See docs/api.md.",
        responses={401: {"model": ErrorResponse}, 403: {"model": ErrorResponse}},
    )
    configs: dict[int, Configuration] = {}
    # Who the officers are: the live staff directory (a change is seen within a second).
    staff = DirectoryCache(engine)

    def configuration() -> Configuration:
        version = repository.latest_configuration_version(engine)
        if version is None:
            raise ApiError(503, "no_configuration", repository.NO_CONFIGURATION)
        if version not in configs:
            configs.clear()
            configs[version] = repository.configuration(engine, version)
        return configs[version]

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, e: RequestValidationError) -> JSONResponse:
        # FastAPI's own answer quotes the input (personal data, or megabytes): name the
        # field and the rule only, as every refusal does.
        details = [d for d in e.errors() if isinstance(d, dict)]
        message = "; ".join(
            describe_error(cast(ErrorDetails, {**d, "loc": tuple(d.get("loc", ()))[1:]}))
            for d in details
        )
        return JSONResponse(
            {"error": {"code": "invalid_input", "message": message or "invalid request"}},
            status_code=422,
        )

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, e: ApiError) -> JSONResponse:
        body = {"error": {"code": e.code, "message": e.message}}
        headers = {"WWW-Authenticate": "Bearer"} if e.status == 401 else None
        return JSONResponse(body, status_code=e.status, headers=headers)

    def caller(request: Request) -> Caller:
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else None
        if token is None:
            token = request.cookies.get(COOKIE)
        if not token:
            raise ApiError(401, "unauthenticated", "send Authorization: Bearer <token>")
        entry: TokenEntry | None = tokens.find(token)
        if entry is None:
            raise ApiError(401, "unauthenticated", "the token is not one this service knows")
        acting = request.headers.get(ACTING_HEADER, "").strip() or None
        if entry.officer is not None:
            if acting is not None and acting != entry.officer:
                raise ApiError(
                    403, "not_permitted", f"this token acts for one officer; drop {ACTING_HEADER}"
                )
            officer = entry.officer
        elif acting is None:
            raise ApiError(401, "no_officer", f"this token needs {ACTING_HEADER}: <staff key>")
        else:
            officer = acting
        user = staff.snapshot().staff.get(officer)
        if user is None or user.disabled:
            raise ApiError(403, "unknown_actor", "the acting officer is not active staff")
        return Caller(service=entry.service, officer=officer)

    Auth = Annotated[Caller, Depends(caller)]

    def roles_of(officer: Key) -> list[Key]:
        member = staff.snapshot().staff.get(officer)
        return member.roles_on(today_london()) if member is not None else []

    # ------------------------------------------------------------------ reads

    @app.get("/me", response_model=Me, tags=["officer"])
    def me(who: Auth) -> Me:
        """The calling service and the officer it acts for."""
        member = staff.snapshot().staff.get(who.officer)
        return Me(
            service=who.service,
            officer=who.officer,
            display_name=member.display_name if member is not None else who.officer,
            roles=roles_of(who.officer),
        )

    @app.get("/me/tasks", response_model=list[WorkItem], tags=["officer"])
    def my_tasks(who: Auth, limit: Annotated[int, Query(ge=1, le=1000)] = 500) -> list[WorkItem]:
        """My open tasks (open, waiting, lagging) on open cases, soonest due first, with
        their SLA status and due instant."""
        return open_work(engine, [Owner(kind="user", key=who.officer)], limit=limit)

    @app.get("/me/role-tasks", response_model=list[WorkItem], tags=["officer"])
    def role_tasks(who: Auth, limit: Annotated[int, Query(ge=1, le=1000)] = 500) -> list[WorkItem]:
        """Open tasks owned by a role I am a member of, soonest due first."""
        owners = [Owner(kind="role", key=r) for r in roles_of(who.officer)]
        return open_work(engine, owners, limit=limit)

    @app.get("/me/alerts", response_model=list[AlertRow], tags=["officer"])
    def my_alerts(
        who: Auth,
        unread_only: bool = False,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> list[AlertRow]:
        """My alerts, newest first."""
        return repository.inbox(engine, who.officer, unread_only=unread_only, limit=limit)

    @app.post("/me/alerts/read", response_model=Marked, tags=["officer"])
    def mark_read(who: Auth, body: MarkRead) -> Marked:
        """Mark alerts of mine read (others' and those already read are left alone)."""
        return Marked(marked=repository.mark_read(engine, who.officer, body.ids))

    @app.get(
        "/cases/{reference}",
        response_model=CaseRecord,
        responses={404: {"model": ErrorResponse}},
        tags=["cases"],
    )
    def case_summary(who: Auth, reference: str) -> CaseRecord:
        """The case as last recorded: status, owner, SLA status, due instants, its tasks."""
        record = repository.load_case(engine, reference)
        if record is None:
            raise ApiError(404, "not_found", f"no case {reference} is recorded")
        return record.model_copy(update={"audit": []})

    # ------------------------------------------------------------------ messages

    client: list[CaseClient] = []
    lock = asyncio.Lock()

    async def case_client() -> CaseClient:
        async with lock:
            if not client:
                try:
                    client.append(await cases())
                except Exception as e:
                    raise ApiError(
                        503, "temporal_unreachable", f"cannot reach Temporal ({type(e).__name__})"
                    ) from None
        return client[0]

    def add_message_endpoint(msg: Message[Any]) -> None:
        body_model = _body_model(msg)

        async def send(
            who: Auth,
            reference: str,
            body: Annotated[body_model, Body()],  # type: ignore[valid-type]
        ) -> Any:
            values = body.model_dump()  # type: ignore[attr-defined]
            values["request_id"] = values.get("request_id") or new_request_id()
            try:
                request = msg.request.model_validate({**values, "actor": who.officer})
            except ValidationError as e:
                raise ApiError(422, "invalid_input", describe_validation_error(e)) from None
            cases_ = await case_client()
            try:
                view = await cases_.send(reference, msg, request)
            except RequestRefusedError as e:
                raise ApiError(_STATUS_OF_CODE.get(e.code, 409), e.code, str(e)) from None
            except CaseUnavailableError as e:
                raise ApiError(503, "case_unavailable", str(e)) from None
            except RPCError as e:
                if e.status == RPCStatusCode.NOT_FOUND:
                    raise ApiError(404, "not_found", f"no case {reference}") from None
                raise ApiError(502, "temporal_error", e.status.name) from None
            return {
                "request_id": request.request_id,
                "task": view.model_dump(mode="json") if view is not None else None,
            }

        send.__name__ = msg.name
        send.__doc__ = msg.description
        app.post(
            f"/cases/{{reference}}/messages/{msg.name}",
            tags=["messages"],
            summary=msg.help,
            responses={
                404: {"model": ErrorResponse},
                409: {"model": ErrorResponse, "description": "refused: the code says why"},
                503: {"model": ErrorResponse},
            },
        )(send)

    for msg in MESSAGES:
        add_message_endpoint(msg)

    # ------------------------------------------------------------------ officer page

    pages = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    pages.filters["uk"] = uk_time
    page = pages.from_string(_PAGE)
    case_page = pages.from_string(_CASE_PAGE)
    login_page = pages.from_string(_LOGIN)

    def page_caller(request: Request) -> Caller | None:
        try:
            return caller(request)
        except ApiError as e:
            if e.status == 401:
                return None
            raise

    @app.get("/officer", response_class=HTMLResponse, include_in_schema=False)
    def officer_page(request: Request) -> Any:
        who = page_caller(request)
        if who is None:
            return RedirectResponse("/officer/login", status_code=303)
        mine = open_work(engine, [Owner(kind="user", key=who.officer)])
        roles = roles_of(who.officer)
        theirs = open_work(engine, [Owner(kind="role", key=r) for r in roles])
        work = sorted(
            [*mine, *theirs],
            key=lambda w: (w.due_at is None, w.due_at or datetime.max, w.case_reference),
        )
        alerts = repository.inbox(engine, who.officer, limit=50)
        config = configuration()
        users = {m.key: m.display_name for m in staff.snapshot().staff.values()}
        return page.render(
            officer=users.get(who.officer, who.officer),
            names={**users, **{r.key: r.name for r in config.roles}},
            work=work,
            alerts=alerts,
            rag=_rag,
            labels=INDICATOR_LABELS,
            unread=sum(1 for a in alerts if a.read_at is None),
        )

    @app.get("/officer/cases/{reference}", response_class=HTMLResponse, include_in_schema=False)
    def officer_case(request: Request, reference: str) -> Any:
        who = page_caller(request)
        if who is None:
            return RedirectResponse("/officer/login", status_code=303)
        record = repository.load_case(engine, reference)
        if record is None:
            raise HTTPException(404, f"no case {reference} is recorded")
        return case_page.render(case=record, rag=_rag)

    @app.get("/officer/login", response_class=HTMLResponse, include_in_schema=False)
    def login_form(error: str = "") -> Any:
        return login_page.render(error=error)

    @app.post("/officer/login", include_in_schema=False)
    def login(request: Request, token: Annotated[str, Form()]) -> Any:
        entry = tokens.find(token.strip())
        if entry is None or entry.officer is None:
            return HTMLResponse(
                login_page.render(error="That token is not an officer's token."), status_code=401
            )
        response = RedirectResponse("/officer", status_code=303)
        response.set_cookie(
            COOKIE,
            token.strip(),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    @app.post("/officer/alerts/read", include_in_schema=False)
    def page_mark_read(request: Request, ids: Annotated[list[int] | None, Form()] = None) -> Any:
        who = page_caller(request)
        if who is None:
            return RedirectResponse("/officer/login", status_code=303)
        repository.mark_read(engine, who.officer, ids or [])
        return RedirectResponse("/officer", status_code=303)

    return app


def _rag(status: str | None) -> str:
    return {"on_track": "green", "amber": "amber", "breached": "red", "escalated": "red"}.get(
        status or "", "grey"
    )


_STYLE = """
<style>
 body { font-family: system-ui, sans-serif; margin: 2rem; color: #1b1b1b; }
 h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
 table { border-collapse: collapse; width: 100%; }
 th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid #ddd; }
 th { background: #f3f2f1; }
 .rag { display: inline-block; min-width: 5.5rem; padding: .1rem .5rem; border-radius: .3rem;
        font-weight: 600; text-align: center; }
 .green { background: #cce2d8; color: #005a30; } .amber { background: #fff7bf; color: #594d00; }
 .red { background: #f6d7d2; color: #942514; } .grey { background: #eee; color: #444; }
 .unread { font-weight: 600; } a { color: #1d70b8; }
</style>
"""

_PAGE = (
    """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>My work: {{ officer }}</title>"""
    + _STYLE
    + """</head><body>
<h1>My work: {{ officer }}</h1>
<section aria-labelledby="work"><h2 id="work">Open tasks, soonest due first ({{ work|length }})</h2>
<table id="worklist"><thead><tr><th>Status</th><th>Due</th><th>Case</th><th>Task</th>
<th>Owner</th></tr></thead><tbody>
{% for w in work %}<tr class="task" data-rag="{{ rag(w.sla_status) }}">
<td><span class="rag {{ rag(w.sla_status) }}">
{{- (w.sla_status or w.status)|replace('_', ' ') }}</span></td>
<td>{{ w.due_at|uk or '-' }}</td>
<td><a href="/officer/cases/{{ w.case_reference }}">{{ w.case_reference }}</a></td>
<td>{{ w.task_name }}</td><td>{{ names.get(w.owner.key, w.owner.key) }}
{%- if w.owner.kind == 'role' %} (team){% endif %}</td></tr>
{% else %}<tr><td colspan="5">Nothing open.</td></tr>{% endfor %}
</tbody></table></section>
<section aria-labelledby="alerts"><h2 id="alerts">My alerts ({{ unread }} unread)</h2>
<form method="post" action="/officer/alerts/read">
<table id="alertlist"><thead><tr><th></th><th>Alert</th><th>Case</th><th>Task</th><th>When</th>
</tr></thead><tbody>
{% for a in alerts %}<tr class="alert{% if not a.read_at %} unread{% endif %}">
<td>{% if not a.read_at %}<input type="checkbox" name="ids" value="{{ a.id }}" checked
 aria-label="mark read">{% endif %}</td>
<td>{{ labels[a.indicator] }}{% if a.indicator == 'follow_on' %} {{ a.occurrence }}{% endif %}</td>
<td><a href="/officer/cases/{{ a.case_reference }}">{{ a.case_reference }}</a></td>
<td>{{ a.task_name }}</td><td>{{ a.indicator_at|uk }}</td></tr>
{% else %}<tr><td colspan="5">No alerts.</td></tr>{% endfor %}
</tbody></table>
{% if unread %}<p><button type="submit">Mark ticked alerts read</button></p>{% endif %}
</form></section></body></html>"""
)

_CASE_PAGE = (
    """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Case {{ case.reference }}</title>"""
    + _STYLE
    + """</head><body><p><a href="/officer">&larr; My work</a></p>
<h1>Case {{ case.reference }}</h1>
<p><span class="rag {{ rag(case.sla_status) }}">{{ case.sla_status|replace('_', ' ') }}</span>
 {{ case.status }}, topic {{ case.topic }}, owner {{ case.owner.kind }}:{{ case.owner.key }},
 case due {{ case.case_due_at|uk or '-' }}</p>
<table><thead><tr><th>Status</th><th>Task</th><th>State</th><th>Due</th><th>Owner</th>
</tr></thead><tbody>
{% for t in case.tasks %}<tr><td><span class="rag {{ rag(t.sla_status) }}">
{{ (t.sla_status or '-')|replace('_', ' ') }}</span></td><td>{{ t.name }}</td>
<td>{{ t.status }}</td><td>{{ t.due_at|uk or '-' }}</td>
<td>{% if t.owner %}{{ t.owner.kind }}:{{ t.owner.key }}{% else %}-{% endif %}</td></tr>
{% endfor %}</tbody></table></body></html>"""
)

_LOGIN = (
    """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign in</title>"""
    + _STYLE
    + """</head><body><h1>Sign in</h1>
{% if error %}<p role="alert">{{ error }}</p>{% endif %}
<form method="post" action="/officer/login"><label>Officer token
<input type="password" name="token" autocomplete="off" required></label>
<button type="submit">Sign in</button></form></body></html>"""
)


async def serve(host: str, port: int, engine: Engine, tokens: Tokens) -> None:
    """Run the service with uvicorn until cancelled."""
    import uvicorn

    from starter.client import CaseClient as _CaseClient
    from starter.connection import TemporalSettings, connect

    async def cases() -> CaseClient:
        settings = TemporalSettings.from_env()
        return _CaseClient(await connect(settings), settings.task_queue, settings.search_attributes)

    app = create_app(engine, tokens, cases)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    with contextlib.suppress(asyncio.CancelledError):
        await server.serve()
