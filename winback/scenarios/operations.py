"""The what-if engine's operations: the team between a policy's decisions and the users, in simpy.

Time is measured in periods; period ``t`` runs from time ``t`` to ``t + 1``. The policy decides for
every user at its start, the contacts it requests go through operations during it, and the
simulator steps the population at its end with the contacts that reached users by then (a care
message finished at the very end still goes out in the period). Around the batched simulator, a
:class:`simpy.Environment` models:

- the **coupon budget** (``coupon_budget_per_period``) as a :class:`simpy.Container` refilled at the
  start of every period by a process; coupon-like contacts beyond what is left are dropped;
- the **care team** (``care_capacity`` agents) as a :class:`simpy.Resource`: care messages wait in
  a first-in-first-out queue; a dispatcher process requests an agent for the message at its head,
  and the agent holds the resource for ``care_service_time`` while writing it. A message that can
  no longer be finished by the end of period ``sent + care_deadline`` is dropped from the queue
  (the events scale with the messages written, not with those requested);
- **delivery delays** per channel (``delivery_delay``): a process per channel and period carries
  the batch it was handed for that many periods;
- **scheduled campaigns** (``[[campaigns]]``): in its period, a campaign requests its kind for every
  user who can receive it and whom the policy does not contact, through the same operations.

Coupons are followed to their expiry (the validity is the simulator's, so no second copy of it is
simulated): each expiring coupon counts as redeemed when its user bought while it was valid.

Requests meet users in a fixed random order (a generator seeded by the run), so which users a
budget or a queue leaves out does not depend on how users are numbered. A user receives one contact
per period: when a late contact arrives in a period that already holds one, the later arrival is
dropped (a *collision*). The simulator may still refuse a contact when it arrives (the user opted
out, a coupon of the kind is still valid, the frequency cap): the refusal is recorded too.

With every limit off and no delays, every requested contact that the masks allow reaches its user
in the period it was requested, so a run is the same as a direct step of the simulator (tested
against the Gymnasium environment).
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Generator, Sequence
from dataclasses import dataclass

import numpy as np
import simpy

from winback.allocation import RESOURCES
from winback.scenarios.schema import Campaign, Operations
from winback.simulator.response import CARE

DROPS = {
    "masked": "the user could not receive it when it was requested",
    "budget": "beyond the coupon budget",
    "deadline": "the care team could not write it in time",
    "collision": "a second contact for the user in the period it arrived",
    "refused": "refused by the simulator on arrival (opted out meanwhile, coupon still valid, frequency cap)",
}
"""Why a requested contact did not reach its user, in the order of its way to the user."""
Process = Generator[simpy.Event, None, None]
"""A simpy process function's generator."""
_EPSILON = 1e-9
"""Slack on simulated times (sums of service times) before they are cut into periods."""


def resource_takers(kinds: Sequence[str], validity: np.ndarray) -> np.ndarray:
    """(R, A) what each action (``none``, then the contact ``kinds``) would take of the
    :data:`~winback.allocation.RESOURCES` were both limited: one coupon for a coupon kind (a
    ``validity`` > 0), one message for care."""
    use = np.zeros((len(RESOURCES), len(kinds) + 1))
    for k, kind in enumerate(kinds):
        use[0, k + 1] = float(validity[k] > 0)
        use[1, k + 1] = float(kind == CARE)
    return use


def resource_use(limits: Operations, kinds: Sequence[str], validity: np.ndarray) -> np.ndarray:
    """(R, A) what each action takes of the :data:`~winback.allocation.RESOURCES` under ``limits``:
    :func:`resource_takers` of the resources limited (a budget, a care team), nothing of the others."""
    limited = np.array([limits.coupon_budget_per_period > 0, limits.care_capacity > 0], dtype=np.float64)
    return resource_takers(kinds, validity) * limited[:, None]


@dataclass
class OperationsLog:
    """What operations did in each period of one run (``T`` periods, ``K`` contact kinds)."""

    requested: np.ndarray
    """(T, K) contacts the policy (and campaigns) requested, masked ones included."""
    campaign: np.ndarray
    """(T, K) of ``requested``, the contacts scheduled campaigns requested."""
    served: np.ndarray
    """(T, K) contacts delivered to users (the simulator's ``delivered``)."""
    dropped: dict[str, np.ndarray]
    """Each of :data:`DROPS`: (T, K) contacts dropped for that reason, in the period they were dropped."""
    care_queue: np.ndarray
    """(T,) care messages waiting for an agent at the end of the period."""
    coupons_used: np.ndarray
    """(T,) coupons accepted for sending (taken from the budget, when there is one)."""
    coupons_expired: np.ndarray
    """(T,) coupons whose last valid period this was."""
    coupons_redeemed: np.ndarray
    """(T,) of ``coupons_expired``, those under which the user bought (the discount was paid)."""
    in_flight: np.ndarray
    """(T,) contacts accepted (past the masks and the budget) but neither delivered nor dropped at the
    end of the period: waiting for or being written by the care team, or on their way."""

    @classmethod
    def empty(cls, horizon: int, n_kinds: int) -> OperationsLog:
        return cls(
            requested=np.zeros((horizon, n_kinds), dtype=np.int64),
            campaign=np.zeros((horizon, n_kinds), dtype=np.int64),
            served=np.zeros((horizon, n_kinds), dtype=np.int64),
            dropped={reason: np.zeros((horizon, n_kinds), dtype=np.int64) for reason in DROPS},
            care_queue=np.zeros(horizon, dtype=np.int64),
            coupons_used=np.zeros(horizon, dtype=np.int64),
            coupons_expired=np.zeros(horizon, dtype=np.int64),
            coupons_redeemed=np.zeros(horizon, dtype=np.int64),
            in_flight=np.zeros(horizon, dtype=np.int64),
        )

    def series(self) -> dict[str, np.ndarray]:
        """Every series by name (``dropped_<reason>`` for the drops)."""
        return {
            "requested": self.requested,
            "campaign": self.campaign,
            "served": self.served,
            **{f"dropped_{reason}": counts for reason, counts in self.dropped.items()},
            "care_queue": self.care_queue,
            "coupons_used": self.coupons_used,
            "coupons_expired": self.coupons_expired,
            "coupons_redeemed": self.coupons_redeemed,
            "in_flight": self.in_flight,
        }


class OperationsDesk:
    """Operations of one run over ``horizon`` periods: :meth:`dispatch` the period's requests at its
    start, then :meth:`deliveries` (the contacts reaching users in it), then :meth:`settle` with what
    the simulator delivered."""

    def __init__(
        self,
        limits: Operations,
        kinds: tuple[str, ...],
        validity: np.ndarray,
        n_users: int,
        horizon: int,
        rng: np.random.Generator,
        campaigns: Sequence[Campaign] = (),
    ) -> None:
        self.limits, self.kinds, self.n_users, self.rng = limits, kinds, n_users, rng
        self.validity = np.asarray(validity, dtype=np.int64)
        """(K,) periods a contact of each kind stays valid (0: not a coupon)."""
        self.is_coupon = self.validity > 0
        self._expires = np.zeros((n_users, len(kinds)), dtype=np.int64)
        """Period before which each user's coupon of each kind is valid (0: none delivered)."""
        self._redeemed = np.zeros((n_users, len(kinds)), dtype=bool)
        """Whether the user bought while that coupon was valid."""
        self.delay = np.array([limits.delivery_delay.get(kind, 0) for kind in kinds], dtype=np.int64)
        self.env = simpy.Environment()
        self.log = OperationsLog.empty(horizon, len(kinds))
        self.care_kind = kinds.index(CARE) if CARE in kinds else -1
        self.care: simpy.Resource | None = None
        self._care_queue: deque[tuple[int, int]] = deque()
        """Care messages waiting for an agent: (user, period sent), oldest first."""
        self._care_work: simpy.Event | None = None
        """Triggered when messages join an empty queue (the idle dispatcher waits on it)."""
        self._writing: list[float] = []
        """When each message an agent is writing now will be finished."""
        if limits.care_capacity:
            self.care = simpy.Resource(self.env, limits.care_capacity)
            self.env.process(self._dispatch_care())
        self.budget = None
        if limits.coupon_budget_per_period:
            self.budget = simpy.Container(self.env, capacity=limits.coupon_budget_per_period)
            self.env.process(self._refill_budget())
        self.campaigns: dict[int, list[int]] = {}
        """Kind indices of the campaigns going out in each period."""
        for campaign in campaigns:
            self.campaigns.setdefault(campaign.period, []).append(kinds.index(campaign.kind))
        self._arrivals: dict[int, list[tuple[np.ndarray, int]]] = {}
        self._delivered = -1
        """The last period whose contacts went out."""
        self._in_flight = 0

    def dispatch(self, period: int, actions: np.ndarray, masks: np.ndarray) -> None:
        """The policy's (n,) ``actions`` at the start of ``period``, with the (n, A) masks it saw."""
        self._advance_to(period)
        actions = np.asarray(actions, dtype=np.int64)
        for k in self.campaigns.get(period, ()):
            reached = (actions == 0) & masks[:, k + 1]
            actions = np.where(reached, k + 1, actions)
            self.log.campaign[period, k] += int(reached.sum())
        order = self.rng.permutation(self.n_users)
        actions = actions[order]
        allowed = masks[order, actions]
        for k in range(len(self.kinds)):
            chosen = actions == k + 1
            self.log.requested[period, k] = int(chosen.sum())
            self.log.dropped["masked"][period, k] = int((chosen & ~allowed).sum())
            users = order[chosen & allowed]
            if self.is_coupon[k]:
                if self.budget is not None:
                    users = self._take_budget(period, k, users)
                self.log.coupons_used[period] += len(users)
            self._in_flight += len(users)
            if k == self.care_kind and self.care is not None:
                self._care_queue.extend((int(user), period) for user in users)
                if self._care_work is not None and users.size:
                    self._care_work.succeed()
                    self._care_work = None
            else:
                self._send(users, k, period)

    @property
    def limited(self) -> bool:
        """Whether users share a coupon budget or a care team."""
        return self.limits.shared

    def resource_use(self) -> np.ndarray:
        """(R, A) :func:`resource_use` of these operations."""
        return resource_use(self.limits, self.kinds, self.validity)

    def available(self, period: int) -> np.ndarray:
        """(2,) what the :data:`RESOURCES` can serve of the requests of ``period`` (``inf`` without a
        limit): the coupons left in the budget, and the care messages sent now that the team can
        finish within the period after the queue ahead of them (first in, first out; by their
        deadline when one message takes longer than a period)."""
        self._advance_to(period)
        coupons = np.inf if self.budget is None else float(self.budget.level)
        return np.array([coupons, np.inf if self.care is None else float(self._care_slots(period))])

    def _care_slots(self, period: int) -> int:
        """Care messages sent in ``period`` that agents can finish within it (or, when one message
        takes longer than a period, start by their deadline), after the messages writing and waiting
        now (those that would miss their own deadline take no time). Within the period: a message
        finished in the next one would arrive when the user may already have another contact (a
        collision); the cost is the end of a period too short for one more message."""
        now, service = self.env.now, self.limits.care_service_time
        free = [*self._writing, *[now] * (self.limits.care_capacity - len(self._writing))]
        heapq.heapify(free)
        for _, sent in self._care_queue:
            start = max(heapq.heappop(free), now)
            heapq.heappush(free, start if start > self._latest_start(sent) + _EPSILON else start + service)
        latest, slots = self._latest_start(period), 0
        if service <= 1.0:  # finished within the period: it reaches its user before the next contact
            latest = min(latest, period + 1 - service)
        while slots < self.n_users:
            start = max(heapq.heappop(free), now)
            if start > latest + _EPSILON:
                break
            slots += 1
            heapq.heappush(free, start + service)
        return slots

    def deliveries(self, period: int) -> np.ndarray:
        """(n,) actions reaching users in ``period`` (runs operations to the period's end)."""
        self._advance_to(period + 1)
        self._drop_expired()
        self._delivered = period
        actions = np.zeros(self.n_users, dtype=np.int64)
        for users, k in self._arrivals.pop(period, []):
            free = users[actions[users] == 0]
            self.log.dropped["collision"][period, k] += len(users) - len(free)
            actions[free] = k + 1
            self._in_flight -= len(users)
        return actions

    def settle(self, period: int, sent: np.ndarray, delivered: np.ndarray, bought: np.ndarray) -> None:
        """Record what the simulator did with the contacts ``sent`` in ``period``: ``delivered`` ones
        were served, the others refused on arrival; ``bought`` (n,) bool: who bought in the period
        (a coupon valid then is redeemed)."""
        for k in range(len(self.kinds)):
            arrived = sent == k + 1
            self.log.served[period, k] = int((delivered == k + 1).sum())
            self.log.dropped["refused"][period, k] = int(arrived.sum()) - self.log.served[period, k]
        self.log.care_queue[period] = len(self._care_queue)
        self.log.in_flight[period] = self._in_flight
        self._track_coupons(period, delivered, bought)

    def _track_coupons(self, period: int, delivered: np.ndarray, bought: np.ndarray) -> None:
        """Coupons delivered now start their validity (as the simulator's ``valid_left``); those whose
        last valid period this is expire, redeemed if the user bought while they were valid."""
        for k in np.flatnonzero(self.is_coupon):
            new = delivered == k + 1
            self._expires[new, k] = period + self.validity[k]
            self._redeemed[new, k] = False
        self._redeemed |= (self._expires > period) & bought[:, None]
        expiring = self._expires == period + 1
        self.log.coupons_expired[period] = int(expiring.sum())
        self.log.coupons_redeemed[period] = int((expiring & self._redeemed).sum())

    def _advance_to(self, time: float) -> None:
        """Set the clock to ``time``, processing every event due by then (within float slack):
        work never starts before the period it belongs to."""
        if self.env.now < time:
            self.env.run(until=time)
        while self.env.peek() <= time + _EPSILON:
            self.env.step()

    # ------------------------------------------------------------------------------ processes
    def _take_budget(self, period: int, k: int, users: np.ndarray) -> np.ndarray:
        """The first of ``users`` the coupon budget left in the period covers (the rest are dropped)."""
        assert self.budget is not None
        granted = min(len(users), int(self.budget.level))
        if granted:
            self.budget.get(granted)
        self.log.dropped["budget"][period, k] += len(users) - granted
        return users[:granted]

    def _refill_budget(self) -> Process:
        assert self.budget is not None
        while True:
            if self.budget.level < self.budget.capacity:
                yield self.budget.put(self.budget.capacity - self.budget.level)
            yield self.env.timeout(1)

    def _dispatch_care(self) -> Process:
        """Hands the message at the head of the queue to the next free agent, for ever."""
        assert self.care is not None
        while True:
            if not self._care_queue:
                self._care_work = self.env.event()
                yield self._care_work
                continue
            request = self.care.request()
            yield request  # an agent is free
            self._drop_expired()
            if not self._care_queue:
                self.care.release(request)
                continue
            user, sent = self._care_queue.popleft()
            self.env.process(self._write_care(request, user, sent))

    def _write_care(self, request: simpy.Event, user: int, sent: int) -> Process:
        """An agent writes a care message, which goes out in the period it is finished in (a message
        finished at the very end of a period still makes it)."""
        assert self.care is not None
        finish = self.env.now + self.limits.care_service_time
        self._writing.append(finish)
        yield self.env.timeout(self.limits.care_service_time)
        self._writing.remove(finish)
        self.care.release(request)
        self._send(np.array([user]), self.care_kind, max(sent, math.ceil(self.env.now - _EPSILON) - 1))

    def _latest_start(self, sent: int) -> float:
        """When a care message sent in period ``sent`` must be started to be finished by its deadline."""
        return sent + 1 + self.limits.care_deadline - self.limits.care_service_time

    def _drop_expired(self) -> None:
        """Drop the messages at the head of the queue that can no longer be written in time, each in
        the period its last chance fell in."""
        last = len(self.log.care_queue) - 1
        while self._care_queue and self._latest_start(self._care_queue[0][1]) < self.env.now - _EPSILON:
            _, sent = self._care_queue.popleft()
            period = min(max(math.floor(self._latest_start(sent) + _EPSILON), sent), last)
            self.log.dropped["deadline"][period, self.care_kind] += 1
            self._in_flight -= 1

    def _send(self, users: np.ndarray, k: int, period: int) -> None:
        """Hand ``users``' contacts of kind ``k``, ready in ``period``, to the channel, which delivers
        them after its delay."""
        if len(users) == 0:
            return
        if self.delay[k] == 0:
            self._arrive(users, k, period)
        else:
            self.env.process(self._carry(users, k, period, int(self.delay[k])))

    def _carry(self, users: np.ndarray, k: int, period: int, delay: int) -> Process:
        yield self.env.timeout(delay)
        self._arrive(users, k, period + delay)

    def _arrive(self, users: np.ndarray, k: int, period: int) -> None:
        if period <= self._delivered:
            raise RuntimeError(f"contacts arrived for period {period} after it was stepped")
        self._arrivals.setdefault(period, []).append((users, k))
