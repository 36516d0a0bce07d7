"""The routing tree: which receivers an alert reaches, with which grouping and timing.

Matching follows Alertmanager: a node matches when all its matchers match;
its children are tried in order, the first matching child ends the search
unless it has ``continue: true``; a node none of whose children match is
itself the match. Children inherit ``receiver``, ``group_by`` and the three
intervals from their parent; time intervals are not inherited.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from soulwatch.alerting.config import Route
from soulwatch.alerting.matchers import format_matchers, matches
from soulwatch.tsdb.model import Labels, Matcher

DEFAULT_GROUP_WAIT = 30.0
DEFAULT_GROUP_INTERVAL = 300.0
DEFAULT_REPEAT_INTERVAL = 4 * 3600.0


@dataclass(frozen=True)
class RouteOptions:
    """The effective settings of a route node after inheritance."""

    receiver: str
    group_by: frozenset[str]
    group_by_all: bool
    group_wait: float
    group_interval: float
    repeat_interval: float
    mute_time_intervals: tuple[str, ...] = ()
    active_time_intervals: tuple[str, ...] = ()


@dataclass
class RouteNode:
    """A node of the resolved routing tree."""

    key: str
    matchers: list[Matcher]
    options: RouteOptions
    continue_: bool
    children: list[RouteNode] = field(default_factory=list)

    def match(self, labels: Labels) -> list[RouteNode]:
        """The nodes an alert with ``labels`` is routed to, in tree order."""
        if not matches(self.matchers, labels):
            return []
        found: list[RouteNode] = []
        for child in self.children:
            hits = child.match(labels)
            found.extend(hits)
            if hits and not child.continue_:
                break
        return found or [self]

    def group_labels(self, labels: Labels) -> Labels:
        """The labels of ``labels`` that this route groups by."""
        if self.options.group_by_all:
            return labels
        return Labels((n, v) for n, v in labels if n in self.options.group_by)

    def walk(self) -> list[RouteNode]:
        """This node and all below it, depth first."""
        out = [self]
        for child in self.children:
            out.extend(child.walk())
        return out


def build_tree(root: Route) -> RouteNode:
    """Resolve inheritance and keys of a configured route tree."""
    defaults = RouteOptions(
        receiver=root.receiver or "",
        group_by=frozenset(),
        group_by_all=False,
        group_wait=DEFAULT_GROUP_WAIT,
        group_interval=DEFAULT_GROUP_INTERVAL,
        repeat_interval=DEFAULT_REPEAT_INTERVAL,
    )
    return _build(root, defaults, parent_key=None, index=None)


def _build(
    route: Route, parent: RouteOptions, parent_key: str | None, index: int | None
) -> RouteNode:
    group_by = route.group_by
    options = RouteOptions(
        receiver=route.receiver if route.receiver is not None else parent.receiver,
        group_by=parent.group_by
        if group_by is None
        else frozenset(g for g in group_by if g != "..."),
        group_by_all=parent.group_by_all if group_by is None else "..." in group_by,
        group_wait=parent.group_wait if route.group_wait is None else route.group_wait,
        group_interval=parent.group_interval
        if route.group_interval is None
        else route.group_interval,
        repeat_interval=parent.repeat_interval
        if route.repeat_interval is None
        else route.repeat_interval,
        mute_time_intervals=tuple(route.mute_time_intervals),
        active_time_intervals=tuple(route.active_time_intervals),
    )
    own = format_matchers(route.all_matchers)
    key = own if parent_key is None else f"{parent_key}/{own}/{index}"
    node = RouteNode(
        key=key, matchers=route.all_matchers, options=options, continue_=route.continue_
    )
    node.children = [_build(child, options, key, i) for i, child in enumerate(route.routes)]
    return node


def receivers_for(tree: RouteNode, labels: Labels) -> list[str]:
    """The receiver of every route an alert reaches, in order (as ``amtool config routes test``)."""
    return [node.options.receiver for node in tree.match(labels)]
