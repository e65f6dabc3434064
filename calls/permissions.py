"""Who may watch calls, and which calls: every page, export, search, admin page, live socket and
command that reads calls asks here, as do the controls and the JSON API for who may control them.

*Can watch calls* (`calls.watch_call`, staff only) lets a user use the dashboard at all; their scope
decides which calls it shows them:

- an agent sees the calls they took part in (`Call.agent_ids`, filled as agents join: calls/participants.py);
- a supervisor sees the calls any agent of a team they supervise took part in, and the calls to a
  number or identity routed to one of those teams (`TeamRoute`);
- *Can see all calls* (`calls.view_all_calls`, quality and compliance staff) sees every call, as do superusers.

A call no agent joined and no route maps is seen only with *all calls*. `Scope` is the one rule, as a
database filter (`Scope.filter`, for querysets of calls and of their rows) and in memory
(`Scope.includes`, for the live feed's events); `visible_calls(user)` is the calls a user may see.
Whatever is out of scope answers 404, as if it did not exist, so call ids cannot be probed.

A user's scope is read once per user object (`scope_of`), as Django keeps their permissions: a request
asks for it as often as it likes for one or two queries, and a change of teams shows from the next request.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from importlib import import_module

from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import BooleanField, Exists, F, Func, OuterRef, Q, QuerySet
from django.db.models.sql.compiler import SQLCompiler
from django.utils.crypto import constant_time_compare

from calls.models import Call, Team

WATCH_PERMISSION = "calls.watch_call"
CONTROL_PERMISSION = "calls.control_call"
ALL_CALLS_PERMISSION = "calls.view_all_calls"

User = AbstractBaseUser | AnonymousUser

# Up to this many agents, a scope finds its calls with `agent_ids && ARRAY[…]`, which the GIN index on
# agent_ids answers while their calls are a small share of all calls (an agent, a team or a few). With
# more (a supervisor of ten teams: 200 agents, a fifth of 100,000 calls) PostgreSQL rightly reads every
# call instead, and && then compares each call's agents with each of the scope's, 200 comparisons per
# call; such a scope asks `TookPartIn`, one hashed lookup per agent of the call. Measured at 100,000
# calls (docs/performance.md, "Scoped access at 100,000 calls"): PostgreSQL kept to the index for every
# page's queries up to 100 agents (a tenth of the calls); from 140 it read every call for some of them.
FEW_AGENTS = 100
_SCOPE_ATTRIBUTE = "_calls_scope"  # where scope_of keeps a user's scope, beside Django's _perm_cache


def can_watch(user: User) -> bool:
    return bool(user.is_authenticated and user.is_staff and user.is_active and user.has_perm(WATCH_PERMISSION))


def can_control(user: User) -> bool:
    return bool(user.is_authenticated and user.is_staff and user.is_active and user.has_perm(CONTROL_PERMISSION))


class TookPartIn(Func):
    """`agent_ids && ARRAY[…]` (any of these agents took part), written so that PostgreSQL tests a call
    in about constant time however many agents the list has: `= ANY` of a constant list of nine or more
    is a hash lookup (PostgreSQL 14 and later), and nearly every call has one or two agents. A call with
    more (passed on twice or more) is tested with && itself, which is exact for any call."""

    output_field = BooleanField()
    conditional = True

    def __init__(self, field: str, agent_ids: Iterable[int]) -> None:
        self.agent_ids = sorted(int(agent_id) for agent_id in agent_ids)
        super().__init__(F(field))

    def as_sql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra_context: object
    ) -> tuple[str, list[object]]:
        field, params = compiler.compile(self.source_expressions[0])
        if params:
            raise ValueError("TookPartIn takes a column of calls, not an expression with parameters")
        # The ids are written into the statement (integers, made so in __init__), not passed as parameters,
        # because the statement names the list four times: one constant, the same each time.
        ids = "'{" + ",".join(str(agent_id) for agent_id in self.agent_ids) + "}'::bigint[]"
        sql = (
            f"CASE cardinality({field}) WHEN 0 THEN false"
            f" WHEN 1 THEN {field}[1] = ANY({ids})"
            f" WHEN 2 THEN ({field}[1] = ANY({ids}) OR {field}[2] = ANY({ids}))"
            f" ELSE {field} && {ids} END"
        )
        return sql, []


@dataclass(frozen=True)
class Scope:
    """The calls one user may see, as sets small enough to keep in memory per live viewer."""

    all_calls: bool = False
    own_agent_ids: frozenset[int] = frozenset()  # the user's own Agent, if they are one
    team_agent_ids: frozenset[int] = frozenset()  # the agents of the teams they supervise
    team_called: frozenset[str] = frozenset()  # the numbers and identities routed to those teams

    @property
    def agent_ids(self) -> frozenset[int]:
        return self.own_agent_ids | self.team_agent_ids

    def filter(self, field: str = "") -> Q:
        """The condition on calls in scope; `field` reaches them from another model ("call__")."""
        if self.all_calls:
            return Q()
        condition = Q(pk__in=[])  # matches nothing
        agent_ids = sorted(self.agent_ids)
        if len(agent_ids) > FEW_AGENTS:
            condition |= Q(TookPartIn(f"{field}agent_ids", agent_ids))
        elif agent_ids:
            condition |= Q(**{f"{field}agent_ids__overlap": agent_ids})
        if self.team_called:
            condition |= Q(**{f"{field}callee__in": sorted(self.team_called)})
        return condition

    def calls(self, calls: QuerySet[Call] | None = None) -> QuerySet[Call]:
        return (Call.objects.all() if calls is None else calls).filter(self.filter())

    def includes(self, agent_ids: Iterable[int], callee: str) -> bool:
        """The same rule as `filter`, for a call's agents and callee as a live event carries them."""
        return self.all_calls or not self.agent_ids.isdisjoint(agent_ids) or callee in self.team_called

    def as_supervisor(self) -> Scope:
        """The calls the user oversees: their teams' and, with all calls, every one; not their own as an agent."""
        return Scope(self.all_calls, frozenset(), self.team_agent_ids, self.team_called)


NOTHING = Scope()


def scope_of(user: User) -> Scope:
    """One small query for an agent, two for a supervisor, once per user object: a request's user keeps
    it for the request (every surface may ask); the live feed keeps it per viewer and re-reads it with a
    fresh user (`session_scope`)."""
    if not user.is_authenticated or not user.is_active:
        return NOTHING
    scope = getattr(user, _SCOPE_ATTRIBUTE, None)
    if scope is None:
        scope = _read_scope(user)
        setattr(user, _SCOPE_ATTRIBUTE, scope)
    return scope


def _read_scope(user: AbstractBaseUser) -> Scope:
    if user.has_perm(ALL_CALLS_PERMISSION):
        return Scope(all_calls=True)
    # Their own Agent, if they are one, and whether they supervise a team: one query, all an agent needs.
    supervised_teams = Team.objects.filter(supervisors=OuterRef("pk"))
    own_agent, supervises = (
        get_user_model().objects.filter(pk=user.pk).values_list("agent", Exists(supervised_teams)).get()
    )
    own = frozenset() if own_agent is None else frozenset([own_agent])
    if not supervises:
        return Scope(own_agent_ids=own)
    # Each supervised team's members and routes, in one query (a row per member and route of a team).
    teams = list(Team.objects.filter(supervisors=user).values_list("members", "routes__called"))
    return Scope(
        own_agent_ids=own,
        team_agent_ids=frozenset(agent_id for agent_id, _ in teams if agent_id is not None),
        team_called=frozenset(called for _, called in teams if called is not None),
    )


def visible_calls(user: User, calls: QuerySet[Call] | None = None) -> QuerySet[Call]:
    """The calls `user` may see (among `calls`, default every call): what every surface starts from."""
    return scope_of(user).calls(calls)


def supervised_calls(user: User) -> QuerySet[Call]:
    """The calls whose access history `user` may read: their teams' calls, or every call with all calls."""
    return scope_of(user).as_supervisor().calls()


def session_user(session_key: str | None) -> AbstractBaseUser | None:
    """The user the session a live socket was opened with is still logged in as, if they may still watch.

    Re-read from the session store and the user table: logging out, the session expiring, a password
    change or losing the permission all end it.
    """
    if not session_key:
        return None
    session = import_module(settings.SESSION_ENGINE).SessionStore(session_key).load()
    user = get_user_model().objects.filter(pk=session.get(SESSION_KEY)).first() if session.get(SESSION_KEY) else None
    if user is None:
        return None
    session_hash = session.get(HASH_SESSION_KEY) or ""
    if not (constant_time_compare(session_hash, user.get_session_auth_hash()) and can_watch(user)):
        return None
    return user


def session_scope(session_key: str | None) -> Scope | None:
    """The scope of the session's user now, or None when the session may no longer watch at all."""
    user = session_user(session_key)
    return scope_of(user) if user is not None else None
