"""
Calls and money: rating before routing, authorising with a reservation, settling into a
CDR and a charge, recovering after a crash, and simulating a call - all through one path.

`authorise_call` runs under the customer's row lock (`select ... for update`), so two
calls of one customer on any nodes are authorised one after the other, each seeing the
money the other holds. A HARD account gets the longest call its money (less what its other
calls hold) and free minutes pay for, in whole increments; that call's cost is held as a
reservation, and `settle_call` never charges more than that, so the balance cannot go
below zero however many calls run at once. `simulate_call` prices a destination and a
duration with the same quote and charge functions a real call is settled with.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from wevoip.billing.decks import DeckIndexes
from wevoip.billing.pricing import PlanRules, charge, longest_call, rate_from_json, rate_to_json
from wevoip.billing.rating import Rate, RateDeck, least_cost
from wevoip.store import calls as store_calls
from wevoip.store import audit, customers, ledger, pricing, webhooks
from wevoip.store.database import Row, Tx
from wevoip.store.errors import Invalid
from wevoip.store.outbox import enqueue_mail
from wevoip.store.subscribers import get_subscriber

ZERO = Decimal(0)
DIRECTIONS = ("outbound", "inbound", "forwarded")


class CallRefused(Exception):
    """A call that may not be made; `reason` is a stable code, the message says why."""

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Offer:
    carrier_id: int
    version_id: int
    rate: Rate


@dataclass(frozen=True)
class Quote:
    destination: str
    direction: str
    sell: Rate
    price_version_id: int | None
    offers: tuple[Offer, ...]
    did_id: int | None = None
    forward_to: str | None = None

    def cost_rate(self, carrier_id: int | None) -> tuple[Rate | None, int | None]:
        for offer in self.offers:
            if carrier_id is None or offer.carrier_id == carrier_id:
                return offer.rate, offer.version_id
        return None, None

    def to_json(self) -> dict[str, Any]:
        return {"destination": self.destination, "direction": self.direction, "sell": rate_to_json(self.sell),
                "price_version_id": self.price_version_id, "did_id": self.did_id, "forward_to": self.forward_to,
                "offers": [{"carrier_id": o.carrier_id, "version_id": o.version_id, "rate": rate_to_json(o.rate)}
                           for o in self.offers]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Quote":
        return cls(data["destination"], data["direction"], rate_from_json(data["sell"]), data["price_version_id"],
                   tuple(Offer(o["carrier_id"], o["version_id"], rate_from_json(o["rate"])) for o in data["offers"]),
                   data["did_id"], data["forward_to"])


@dataclass(frozen=True)
class Authorisation:
    reservation_id: int
    max_duration_ms: int | None
    quote: Quote
    carriers: tuple[int, ...] = field(default=())


@dataclass(frozen=True)
class _Account:
    """What pricing a customer's call needs, read once per transaction."""

    isp: Row
    customer: Row
    plan: Row | None
    rules: PlanRules


async def _account(tx: Tx, isp_id: int, customer_id: int, *, lock: bool = False,
                   indexes: DeckIndexes | None = None) -> _Account:
    """The customer row is always read (and locked: its balance is the money)."""
    return await _account_of(tx, isp_id, await customers.get_customer(tx, isp_id, customer_id, lock=lock), indexes)


async def _account_of(tx: Tx, isp_id: int, customer: Row, indexes: DeckIndexes | None) -> _Account:
    """The ISP and the plan come from the node's cache when `indexes` is attached to the notifier."""
    indexes = indexes if indexes is not None else DeckIndexes()
    isp = await indexes.isp(tx, isp_id)
    if customer["service_plan_id"] is None:
        return _Account(isp, customer, None, PlanRules())
    plan, rules = await indexes.plan(tx, isp_id, customer["service_plan_id"])
    return _Account(isp, customer, plan, rules)


async def _outbound(tx: Tx, account: _Account, e164: str, at: datetime.datetime,
                    indexes: DeckIndexes) -> tuple[Rate, int | None, tuple[Offer, ...]]:
    isp, plan, rules = account.isp, account.plan, account.rules
    isp_id = isp["id"]
    carrier_decks: dict[str, RateDeck] = {}
    versions: dict[int, int] = {}
    carrier_rows = await indexes.carrier_decks(tx, isp_id)
    for row in carrier_rows:
        found = await indexes.deck_at(tx, isp_id, row["deck_id"], at)
        if found is not None and str(row["carrier_id"]) not in carrier_decks:
            versions[row["carrier_id"]], carrier_decks[str(row["carrier_id"])] = found
    customer_rate, price_version = None, None
    if plan is not None and plan["rate_deck_id"] is not None:
        found = await indexes.deck_at(tx, isp_id, plan["rate_deck_id"], at)
        if found is not None:
            price_version, customer_rate = found[0], found[1].match(e164)
    cheapest = least_cost(e164, carrier_decks, allow_loss=True)
    sell = rules.sell_rate(e164, customer_rate, cheapest[0].rate if cheapest else None)
    if sell is None:
        raise CallRefused("no_rate", f"there is no rate for {e164}")
    if not rules.has_rate_deck:
        # The class is what the most precise carrier prefix says (1900 premium beats 1).
        most_precise = max((offer.rate for offer in cheapest), key=lambda rate: len(rate.prefix))
        sell = replace(sell, dest_class=most_precise.dest_class)
    if sell.dest_class not in rules.allowed_classes:
        raise CallRefused("class_not_allowed", f"{sell.dest_class} destinations are not allowed by the plan")
    flat = not rules.has_rate_deck and not rules.service_deck
    priority = [str(row["carrier_id"]) for row in carrier_rows] if isp["lcr_mode"] == "priority" else None
    offers = least_cost(e164, carrier_decks, price_per_minute=None if flat else sell.per_minute,
                        allow_loss=isp["allow_loss"], priority=priority)
    if not offers:
        raise CallRefused("no_route", f"no carrier takes {e164} at or under its price")
    return sell, price_version, tuple(Offer(int(o.carrier), versions[int(o.carrier)], o.rate) for o in offers)


async def quote_call(tx: Tx, isp_id: int, customer_id: int, destination: str, *, at: datetime.datetime,
                     indexes: DeckIndexes, direction: str = "outbound", did_id: int | None = None,
                     forward_to: str | None = None) -> Quote:
    """How a call would be priced and routed; raises CallRefused when it cannot be made."""
    return await _quote(tx, await _account(tx, isp_id, customer_id, indexes=indexes), destination, at=at, indexes=indexes,
                        direction=direction, did_id=did_id, forward_to=forward_to)


async def _quote(tx: Tx, account: _Account, destination: str, *, at: datetime.datetime, indexes: DeckIndexes,
                 direction: str, did_id: int | None, forward_to: str | None, did: Row | None = None) -> Quote:
    """`did`: the DID's charges, when already read."""
    isp_id, customer_id = account.isp["id"], account.customer["id"]
    if direction == "outbound":
        sell, version, offers = await _outbound(tx, account, destination, at, indexes)
        return Quote(destination, direction, sell, version, offers)
    if direction not in DIRECTIONS:
        raise Invalid("direction", f"must be one of {', '.join(DIRECTIONS)}")
    if did_id is None:
        raise Invalid("did_id", "an incoming call is billed to a DID")
    if did is None:
        did = await pricing.did_charges(tx, isp_id, did_id)
    if did["customer_id"] != customer_id:
        raise Invalid("did_id", "belongs to another customer")
    incoming = Rate("", f"incoming to {did['e164']}", did["per_minute"], increment=account.rules.increment())
    if direction == "inbound":
        return Quote(destination, direction, incoming, None, (), did_id)
    if forward_to is None:
        raise Invalid("forward_to", "a forwarded call needs the number it is forwarded to")
    sell, version, offers = await _outbound(tx, account, forward_to, at, indexes)
    both = Rate(sell.prefix, f"{incoming.description}, forwarded to {forward_to}",
                sell.per_minute + incoming.per_minute, sell.connection_fee, sell.increment, sell.dest_class)
    return Quote(destination, direction, both, version, offers, did_id, forward_to)


async def _free_left(tx: Tx, isp_id: int, customer: Row, rules: PlanRules) -> int:
    if not rules.free_minutes:
        return 0
    used = await store_calls.free_minutes_used(tx, isp_id, customer["id"], customer["period_start"])
    _, held_free = await store_calls.held(tx, isp_id, customer["id"])
    return _free_minutes_left(rules, used, held_free)


def _free_minutes_left(rules: PlanRules, used: int, held: int) -> int:
    """The plan's free minutes this period, less those used and those calls in progress hold."""
    return max(rules.free_minutes - used - held, 0) if rules.free_minutes else 0


def _day_start(at: datetime.datetime) -> datetime.datetime:
    return at.replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class FraudLock:
    """What the fraud guard found over a limit: who to lock and whom to tell."""

    isp_id: int
    customer_id: int
    level: str
    object_id: int
    reason: str
    customer_email: str
    isp_contact: str


class FraudLocked(CallRefused):
    """A call refused because a limit is reached. The refusal rolls the call's transaction
    back, so the lock travels with it: whoever refuses the call writes it afterwards in a
    transaction of its own (`write_fraud_lock`), and the lock, its mail, webhook and audit
    entry stay although the call does not."""

    def __init__(self, lock: FraudLock):
        super().__init__("locked", lock.reason)
        self.lock = lock


async def fraud_check(tx: Tx, isp: Row, customer: Row, subscriber: Row | None, at: datetime.datetime) -> None:
    """Raise FraudLocked when something has passed its daily spend cap or hourly spend limit."""
    isp_id = isp["id"]
    for level, row in (("subscriber", subscriber), ("customer", customer), ("isp", isp)):
        if row is None:
            continue
        for cap, since, what in (("daily_spend_cap", _day_start(at), "daily spend cap"),
                                 ("hourly_spend_cap", at - datetime.timedelta(hours=1), "spend in an hour")):
            if row[cap] is None:
                continue
            spent = await store_calls.spend(tx, isp_id, level, row["id"], since)
            if spent >= row[cap]:
                reason = f"the {level}'s {what} of {row[cap]:.2f} {isp['currency']} is reached ({spent:.2f})"
                raise FraudLocked(FraudLock(isp_id, customer["id"], level, row["id"], reason,
                                            customer["email"] or "", isp["contact_email"] or ""))


async def write_fraud_lock(tx: Tx, lock: FraudLock) -> bool:
    """Lock the subscriber, customer or ISP against new calls, mail the customer and the
    ISP, post `account.locked` and note it in the ISP's audit trail; once per lock: False
    (and nothing written) when it is locked already, by another call or node."""
    locked = await store_calls.lock_calls(tx, lock.isp_id, lock.level, lock.object_id, lock.reason)
    if locked is None:
        return False
    key = f"calls-locked:{lock.level}:{lock.object_id}:{locked['calls_locked_at'].timestamp():.6f}"
    await webhooks.account_locked(tx, lock.isp_id, customer_id=lock.customer_id, reason=lock.reason, dedupe_key=key)
    subject = "Calls locked by the fraud guard"
    body = f"New calls are refused until the account is unlocked: {lock.reason}."
    for to in dict.fromkeys(filter(None, (lock.customer_email if lock.level != "isp" else "", lock.isp_contact))):
        await enqueue_mail(tx, lock.isp_id, to=to, subject=subject, body=body, dedupe_key=f"{key}:{to}")
    await audit.record(tx, lock.isp_id, actor="fraud guard", action="calls.locked",
                       target=f"{lock.level} {lock.object_id}: {lock.reason}")
    return True


def _check_open(isp: Row, customer: Row, subscriber: Row | None) -> None:
    if isp["calls_locked_at"] is not None:
        raise CallRefused("locked", f"the ISP's calls are locked: {isp['calls_lock_reason']}")
    if customer["balance_suspended"]:
        raise CallRefused("no_money", "the account is suspended: its balance is used up")
    if customer["status"] != "ACTIVE":
        raise CallRefused("suspended", f"the account is {customer['status']}, not ACTIVE")
    for what, row in (("account", customer), ("subscriber", subscriber)):
        if row is not None and row["calls_locked_at"] is not None:
            raise CallRefused("locked", f"the {what} is locked: {row['calls_lock_reason']}")


@dataclass(frozen=True)
class Assessment:
    """A call billing allows, with the hold to write for it (`store.calls.Reservation`)."""

    reservation: store_calls.Reservation
    quote: Quote

    @property
    def carriers(self) -> tuple[int, ...]:
        """The carriers that may take the call, cheapest (or by priority) first."""
        return tuple(offer.carrier_id for offer in self.quote.offers)


async def assess_call(tx: Tx, isp_id: int, *, customer_id: int, destination: str, indexes: DeckIndexes,
                      at: datetime.datetime, subscriber_id: int | None = None, direction: str = "outbound",
                      did_id: int | None = None, forward_to: str | None = None,
                      max_call_ms: int = 7_200_000) -> Assessment:
    """Lock the customer's row, rate the call, check the account, and work out the hold:
    for a HARD account the money of the longest call it may make (at most `max_call_ms`,
    so that one call does not hold all of a balance its other calls could use). The caller
    writes the hold in the same transaction, while the row is locked: `authorise_call`
    does, and the B2BUA does with the call's admission, in one statement."""
    locked = await store_calls.lock_account(tx, isp_id, customer_id, subscriber_id=subscriber_id,
                                            did_id=did_id if direction != "outbound" else None)
    account = await _account_of(tx, isp_id, locked.customer, indexes)
    isp, customer, subscriber = account.isp, account.customer, locked.subscriber
    if subscriber is not None and subscriber["customer_id"] != customer_id:
        raise Invalid("subscriber_id", "belongs to another customer")
    _check_open(isp, customer, subscriber)
    quote = await _quote(tx, account, destination, at=at, indexes=indexes, direction=direction, did_id=did_id,
                         forward_to=forward_to, did=locked.did)
    await fraud_check(tx, isp, customer, subscriber, at)
    free_left = _free_minutes_left(account.rules, locked.free_minutes_used, locked.held_free_minutes)
    longest, amount, held_free = None, ZERO, 0
    if customer["balance_management"] == "HARD":
        longest, amount = longest_call(quote.sell, ledger.available(customer) - locked.held_amount, free_left,
                                       max_call_ms)
        if longest == 0:
            raise CallRefused("no_money", "the balance does not pay for the first increment of this call")
        held_free = free_left
    return Assessment(store_calls.Reservation(subscriber_id, direction, destination, amount, longest, held_free,
                                              quote.to_json(), at), quote)


async def authorise_call(tx: Tx, isp_id: int, *, customer_id: int, destination: str, call_id: str, node: str,
                         indexes: DeckIndexes, at: datetime.datetime, subscriber_id: int | None = None,
                         direction: str = "outbound", did_id: int | None = None,
                         forward_to: str | None = None, max_call_ms: int = 7_200_000) -> Authorisation:
    """`assess_call`, and its hold written."""
    assessment = await assess_call(tx, isp_id, customer_id=customer_id, destination=destination, indexes=indexes,
                                   at=at, subscriber_id=subscriber_id, direction=direction, did_id=did_id,
                                   forward_to=forward_to, max_call_ms=max_call_ms)
    held = assessment.reservation
    reservation = await store_calls.reserve(
        tx, isp_id, customer_id, subscriber_id=subscriber_id, node=node, call_id=call_id, direction=direction,
        destination=destination, amount=held.amount, max_duration_ms=held.max_duration_ms,
        free_minutes=held.free_minutes, rating=held.rating, started_at=at)
    return Authorisation(reservation["id"], held.max_duration_ms, assessment.quote, assessment.carriers)


@dataclass(frozen=True)
class Rated:
    price: Decimal
    cost: Decimal
    billable_seconds: int
    free_minutes: int
    cost_version_id: int | None


def rate_call(quote: Quote, talk_ms: int, free_left: int, carrier_id: int | None) -> Rated:
    """Price and cost of `talk_ms` by a quote: what settling and simulating both use."""
    priced = charge(quote.sell, talk_ms, free_left)
    cost_rate, cost_version = quote.cost_rate(carrier_id)
    cost = cost_rate.cost(talk_ms) if cost_rate is not None else ZERO
    return Rated(priced.price, cost, priced.billable_seconds, priced.free_minutes, cost_version)


async def simulate_call(tx: Tx, isp_id: int, customer_id: int, destination: str, duration_ms: int, *,
                        at: datetime.datetime, indexes: DeckIndexes, direction: str = "outbound",
                        did_id: int | None = None, forward_to: str | None = None) -> dict[str, Any]:
    """What a call of `duration_ms` made now would be charged, by the settling code."""
    if isinstance(duration_ms, bool) or not isinstance(duration_ms, int) or not 0 <= duration_ms <= 86_400_000:
        raise Invalid("duration_ms", "must be whole milliseconds from 0 to a day")
    account = await _account(tx, isp_id, customer_id, indexes=indexes)
    quote = await _quote(tx, account, destination, at=at, indexes=indexes, direction=direction, did_id=did_id,
                         forward_to=forward_to)
    rated = rate_call(quote, duration_ms, await _free_left(tx, isp_id, account.customer, account.rules), None)
    carrier = quote.offers[0].carrier_id if quote.offers else None
    return {"destination": destination, "direction": direction, "prefix": quote.sell.prefix,
            "description": quote.sell.description, "dest_class": quote.sell.dest_class,
            "per_minute": quote.sell.per_minute, "connection_fee": quote.sell.connection_fee,
            "increment": str(quote.sell.increment), "carrier_id": carrier,
            "carriers": [o.carrier_id for o in quote.offers], "billable_seconds": rated.billable_seconds,
            "free_minutes": rated.free_minutes, "price": rated.price, "cost": rated.cost,
            "profit": rated.price - rated.cost}


@dataclass(frozen=True)
class CallEnd:
    """What the B2BUA knows when a call ends."""

    ended_at: datetime.datetime
    disposition: str
    answered_at: datetime.datetime | None = None
    sip_code: int | None = None
    hangup_by: str = ""
    b_call_id: str | None = None
    carrier_id: int | None = None
    gateway_id: int | None = None
    tenant_id: int | None = None
    caller_dialled: str = ""
    caller_e164: str | None = None
    callee_dialled: str = ""
    media_flow: str | None = None      # which ways the media went: both, caller_only, callee_only, none


async def settle_call(tx: Tx, isp_id: int, reservation_id: int, end: CallEnd, *,
                      indexes: DeckIndexes | None = None) -> Row:
    """The call's record, priced by its reservation's quote, and its charge; the hold goes."""
    reservation = await store_calls.take_reservation(tx, isp_id, reservation_id)
    account = await _account(tx, isp_id, reservation["customer_id"], lock=True, indexes=indexes)
    customer = account.customer
    quote = Quote.from_json(reservation["rating"])
    talk_ms = 0
    if end.answered_at is not None and end.disposition == "answered":
        talk_ms = max(int((end.ended_at - end.answered_at).total_seconds() * 1000), 0)
        if reservation["max_duration_ms"] is not None:
            talk_ms = min(talk_ms, reservation["max_duration_ms"])
    rated = rate_call(quote, talk_ms, await _free_left(tx, isp_id, customer, account.rules), end.carrier_id)
    if reservation["max_duration_ms"] is not None:
        rated = _within_hold(rated, reservation["amount"])
    started = reservation["started_at"]
    subscriber_id = reservation["subscriber_id"]
    subscriber = await get_subscriber(tx, isp_id, subscriber_id) if subscriber_id is not None else None
    if subscriber is not None and end.tenant_id is None:
        end = _with_tenant(end, subscriber["tenant_id"])
    cdr = await store_calls.insert_cdr(tx, isp_id, {
        "customer_id": customer["id"], "tenant_id": end.tenant_id, "subscriber_id": subscriber_id,
        "carrier_id": end.carrier_id if quote.offers else None, "gateway_id": end.gateway_id,
        "did_id": quote.did_id, "node": reservation["node"], "direction": quote.direction,
        "caller_dialled": end.caller_dialled[:64], "caller_e164": end.caller_e164,
        "callee_dialled": end.callee_dialled[:64] or quote.destination, "callee_e164": quote.destination,
        "forwarded_e164": quote.forward_to, "started_at": started, "answered_at": end.answered_at,
        "ended_at": max(end.ended_at, started), "duration_ms": max(int((end.ended_at - started).total_seconds() * 1000), 0),
        "talk_ms": talk_ms, "billable_seconds": rated.billable_seconds if talk_ms else 0,
        "free_minutes": rated.free_minutes, "disposition": end.disposition, "sip_code": end.sip_code,
        "hangup_by": end.hangup_by, "a_call_id": reservation["call_id"], "b_call_id": end.b_call_id,
        "prefix": quote.sell.prefix, "dest_class": quote.sell.dest_class,
        "price_version_id": quote.price_version_id, "cost_version_id": rated.cost_version_id,
        "cost": rated.cost, "price": rated.price, "media_flow": end.media_flow})
    if rated.price > 0:
        entry = await ledger.add_charge(tx, isp_id, customer["id"], amount=rated.price,
                                        description=f"{quote.direction} call {quote.forward_to or quote.destination}"[:200],
                                        category="call", cdr_id=cdr["id"])
        cdr = await store_calls.link_cdr(tx, isp_id, cdr["id"], entry["id"])
        await _lock_if_over(tx, account.isp, customer, subscriber, end.ended_at)
    return cdr


def free_record(end: CallEnd, *, customer_id: int, tenant_id: int, subscriber_id: int | None, node: str,
                direction: str, callee_e164: str | None, a_call_id: str, started_at: datetime.datetime) -> dict:
    """The CDR of a call billing does not price: on-net, to an application, or in to a
    subscriber's own number."""
    ended_at = max(end.ended_at, started_at)
    talk_ms = int((ended_at - end.answered_at).total_seconds() * 1000) \
        if end.answered_at and end.disposition == "answered" else 0
    return {"customer_id": customer_id, "tenant_id": tenant_id, "subscriber_id": subscriber_id,
            "carrier_id": end.carrier_id, "gateway_id": end.gateway_id, "node": node, "direction": direction,
            "caller_dialled": end.caller_dialled, "caller_e164": end.caller_e164,
            "callee_dialled": end.callee_dialled, "callee_e164": callee_e164, "started_at": started_at,
            "answered_at": end.answered_at, "ended_at": ended_at,
            "duration_ms": int((ended_at - started_at).total_seconds() * 1000), "talk_ms": max(talk_ms, 0),
            "disposition": end.disposition, "sip_code": end.sip_code, "hangup_by": end.hangup_by,
            "a_call_id": a_call_id, "b_call_id": end.b_call_id, "media_flow": end.media_flow}


async def announce_end(tx: Tx, isp_id: int, cdr: Row) -> None:
    """The ISP's `call.ended` webhook, from the record just written, in its transaction."""
    await webhooks.call_ended(
        tx, isp_id, call_id=cdr["a_call_id"], customer_id=cdr["customer_id"], tenant_id=cdr["tenant_id"],
        caller=cdr["caller_e164"] or cdr["caller_dialled"] or "", callee=cdr["callee_e164"] or cdr["callee_dialled"] or "",
        direction=cdr["direction"], started_at=cdr["started_at"], answered_at=cdr["answered_at"],
        ended_at=cdr["ended_at"], duration_ms=cdr["duration_ms"], end_reason=cdr["disposition"],
        charge=cdr["price"])


def _within_hold(rated: Rated, held: Decimal) -> Rated:
    """A HARD call is never charged more than its hold (the B2BUA may cut a little late)."""
    if rated.price <= held:
        return rated
    return Rated(held, rated.cost, rated.billable_seconds, rated.free_minutes, rated.cost_version_id)


def _with_tenant(end: CallEnd, tenant_id: int) -> CallEnd:
    return CallEnd(**{**end.__dict__, "tenant_id": tenant_id})


async def _lock_if_over(tx: Tx, isp: Row, customer: Row, subscriber: Row | None, at: datetime.datetime) -> None:
    """After a charge: lock what the charge took over a limit, for the next call."""
    if all(row is None or row["daily_spend_cap"] is None and row["hourly_spend_cap"] is None
           for row in (isp, customer, subscriber)):
        return
    try:
        await fraud_check(tx, isp, customer, subscriber, at)
    except FraudLocked as refused:
        await write_fraud_lock(tx, refused.lock)
