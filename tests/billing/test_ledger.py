from decimal import Decimal as D

import pytest
import pytest_twisted
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.store.builders import build_tree
from wevoip.store import customers, ledger
from wevoip.store.errors import Invalid, StoreError


async def customer_row(database, customer_id):
    return (await database.fetch("select * from customers where id = %s", (customer_id,)))[0]


_moves = st.lists(st.tuples(st.sampled_from(["payment", "charge"]),
                            st.decimals(min_value=D("0.000001"), max_value=D("1000"), places=6)),
                  min_size=1, max_size=15)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(moves=_moves)
@pytest_twisted.ensureDeferred
async def test_the_ledger_always_sums_to_the_balance(database, moves):
    tree = await build_tree(database, f"l{abs(hash(tuple(moves))) % 10**9}.example.net")
    isp_id, customer_id = tree.isp["id"], tree.customer["id"]
    await database.transact(lambda tx: customers.update_customer(tx, isp_id, customer_id, balance_management="SOFT"))
    for kind, amount in moves:
        entry = await database.transact(lambda tx: ledger.post(tx, isp_id, customer_id, kind=kind, amount=amount,
                                                               description=kind))
        assert entry["amount"] == (amount if kind == "payment" else -amount)
    rows = await database.fetch("select amount, balance_after from ledger where customer_id = %s order by id",
                                (customer_id,))
    running = D(0)
    for row in rows:
        running += row["amount"]
        assert row["balance_after"] == running
    assert (await customer_row(database, customer_id))["balance"] == running


@pytest_twisted.ensureDeferred
async def test_a_balance_moves_only_through_the_ledger(database):
    tree = await build_tree(database, "guard.example.net")
    with pytest.raises(StoreError):
        await database.fetch("update customers set balance = 100 where id = %s", (tree.customer["id"],))
    with pytest.raises(Invalid) as caught:
        await database.transact(lambda tx: ledger.add_payment(tx, tree.isp["id"], tree.customer["id"],
                                                              amount="-5", description="x"))
    assert caught.value.field == "amount"
    with pytest.raises(Invalid) as caught:
        await database.transact(lambda tx: ledger.add_charge(tx, tree.isp["id"], tree.customer["id"],
                                                             amount=0.5, description="x"))
    assert caught.value.field == "amount"


@pytest_twisted.ensureDeferred
async def test_hard_suspends_at_zero_and_soft_goes_negative(database):
    tree = await build_tree(database, "hard.example.net")
    isp_id, customer_id = tree.isp["id"], tree.customer["id"]

    async def move(kind, amount):
        await database.transact(lambda tx: ledger.post(tx, isp_id, customer_id, kind=kind, amount=amount,
                                                       description=kind))
        return await customer_row(database, customer_id)
    await move("payment", "5")
    row = await move("charge", "5")
    assert row["balance"] == 0 and row["status"] == "SUSPENDED" and row["balance_suspended"]
    hooks = await database.fetch("select payload from outbox where isp_id = %s and kind = 'webhook'", (isp_id,))
    assert [(hook["payload"]["event"], hook["payload"]["data"]["customer_id"]) for hook in hooks] == \
        [("account.locked", customer_id)]
    row = await move("payment", "1")
    assert row["status"] == "ACTIVE" and not row["balance_suspended"]
    await database.transact(lambda tx: customers.update_customer(tx, isp_id, customer_id, balance_management="SOFT"))
    row = await move("charge", "3")
    assert row["balance"] == D("-2") and row["status"] == "ACTIVE"


@pytest_twisted.ensureDeferred
async def test_postpaid_hard_spends_down_to_its_credit_limit(database):
    tree = await build_tree(database, "post.example.net")
    isp_id, customer_id = tree.isp["id"], tree.customer["id"]
    await database.transact(lambda tx: customers.update_customer(tx, isp_id, customer_id, billing_mode="postpaid",
                                                                 credit_limit="20"))
    await database.transact(lambda tx: ledger.add_charge(tx, isp_id, customer_id, amount="19", description="x"))
    assert (await customer_row(database, customer_id))["status"] == "ACTIVE"
    await database.transact(lambda tx: ledger.add_charge(tx, isp_id, customer_id, amount="1", description="x"))
    assert (await customer_row(database, customer_id))["status"] == "SUSPENDED"


@pytest_twisted.ensureDeferred
async def test_the_low_balance_mail_goes_once_per_crossing(database):
    tree = await build_tree(database, "low.example.net")
    isp_id, customer_id = tree.isp["id"], tree.customer["id"]
    await database.transact(lambda tx: customers.update_customer(
        tx, isp_id, customer_id, balance_management="SOFT", first_name="Ada", last_name="Lovelace",
        email="ada@acme.example"))
    await database.transact(lambda tx: ledger.set_isp_billing(
        tx, isp_id, low_balance_subject="Low balance, [firstname]",
        low_balance_body="Hello [firstname] [lastname]: [balance] is under [threshold]."))
    await database.transact(lambda tx: ledger.add_payment(tx, isp_id, customer_id, amount="20", description="x"))
    await database.transact(lambda tx: ledger.set_customer_billing(tx, isp_id, customer_id, low_balance_threshold="10",
                                                                   low_balance_email="alerts@acme.example"))

    async def move(kind, amount):
        await database.transact(lambda tx: ledger.post(tx, isp_id, customer_id, kind=kind, amount=amount,
                                                       description=kind))
        return await database.fetch("select payload, dedupe_key from outbox where isp_id = %s and kind = 'mail'"
                                    " order by id", (isp_id,))
    assert await move("charge", "5") == []
    mail = await move("charge", "6")                      # 9 < 10: the first crossing
    assert len(mail) == 1 and mail[0]["payload"] == {
        "to": "alerts@acme.example", "subject": "Low balance, Ada",
        "body": "Hello Ada Lovelace: 9.00 USD is under 10.00 USD."}
    assert len(await move("charge", "1")) == 1            # still below: no second mail
    assert len(await move("payment", "10")) == 1          # back above: re-armed, nothing sent
    mail = await move("charge", "9")                      # 18 - 9: the second crossing
    assert [m["dedupe_key"] for m in mail] == [f"low-balance:{customer_id}:1", f"low-balance:{customer_id}:2"]
    hooks = await database.fetch("select payload from outbox where isp_id = %s and kind = 'webhook' order by id",
                                 (isp_id,))
    assert [(hook["payload"]["event"], hook["payload"]["data"]["balance"]) for hook in hooks] == \
        [("balance.low", "9.000000"), ("balance.low", "9.000000")]
