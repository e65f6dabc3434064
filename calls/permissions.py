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
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from importlib import import_module

from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Q, QuerySet
from django.utils.crypto import constant_time_compare

from calls.models import Agent, Call, TeamRoute

WATCH_PERMISSION = "calls.watch_call"
CONTROL_PERMISSION = "calls.control_call"
ALL_CALLS_PERMISSION = "calls.view_all_calls"

User = AbstractBaseUser | AnonymousUser


def can_watch(user: User) -> bool:
    return bool(user.is_authenticated and user.is_staff and user.is_active and user.has_perm(WATCH_PERMISSION))


def can_control(user: User) -> bool:
    return bool(user.is_authenticated and user.is_staff and user.is_active and user.has_perm(CONTROL_PERMISSION))


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
        if self.agent_ids:
            condition |= Q(**{f"{field}agent_ids__overlap": sorted(self.agent_ids)})
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
    """Three small queries; the live feed keeps the result per viewer and refreshes it periodically."""
    if not user.is_authenticated or not user.is_active:
        return NOTHING
    if user.has_perm(ALL_CALLS_PERMISSION):
        return Scope(all_calls=True)
    own = frozenset(Agent.objects.filter(user=user).values_list("pk", flat=True))
    teams = list(user.supervised_teams.values_list("pk", flat=True))
    if not teams:
        return Scope(own_agent_ids=own)
    team_agents = Agent.objects.filter(teams__in=teams).values_list("pk", flat=True)
    called = TeamRoute.objects.filter(team__in=teams).values_list("called", flat=True)
    return Scope(own_agent_ids=own, team_agent_ids=frozenset(team_agents), team_called=frozenset(called))


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
