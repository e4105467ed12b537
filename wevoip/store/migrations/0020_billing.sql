-- Rating and billing: rate decks with published versions, plan pricing, the ledger that
-- moves every balance, call reservations, call records, fraud locks and recurring charges.

-- ISP-wide billing settings: selling below cost, the home country code that tells domestic
-- from international, the low-balance mail, and the ISP's own spend limits.
alter table isps
    add column allow_loss          boolean not null default false,
    add column lcr_mode            text not null default 'cheapest' check (lcr_mode in ('cheapest', 'priority')),
    add column home_prefix         text not null default '' check (home_prefix ~ '^[0-9]{0,3}$'),
    add column low_balance_subject text not null default 'Your balance is low'
                                       check (length(low_balance_subject) between 1 and 200),
    add column low_balance_body    text not null default
        'Dear [firstname] [lastname], your balance is [balance], below your threshold of [threshold].'
                                       check (length(low_balance_body) between 1 and 5000),
    add column daily_spend_cap     amount check (daily_spend_cap >= 0),
    add column hourly_spend_cap    amount check (hourly_spend_cap >= 0),
    add column calls_locked_at     timestamptz,
    add column calls_lock_reason   text not null default '';

-- A deck is a carrier's price list (cost) or one the ISP sells from (price). Its rows live
-- in versions: a draft is edited or uploaded whole, then published with the moment it takes
-- effect; the version in force at a call's start is the one that prices it.
create table rate_decks (
    id              bigint generated always as identity primary key,
    isp_id          bigint not null references isps (id) on delete cascade,
    name            text not null check (length(name) between 1 and 100),
    kind            text not null check (kind in ('carrier', 'customer')),
    carrier_id      bigint,
    created_at      timestamptz not null default now(),
    constraint rate_decks_name_key unique (isp_id, name),
    unique (isp_id, id),
    check ((kind = 'carrier') = (carrier_id is not null)),
    foreign key (isp_id, carrier_id) references carriers (isp_id, id) on delete cascade
);

create table rate_deck_versions (
    id              bigint generated always as identity primary key,
    isp_id          bigint not null,
    deck_id         bigint not null,
    status          text not null default 'draft' check (status in ('draft', 'published')),
    effective_at    timestamptz,
    published_at    timestamptz,
    row_count       integer not null default 0,
    note            text not null default '',
    created_at      timestamptz not null default now(),
    unique (isp_id, id),
    check ((status = 'published') = (effective_at is not null)),
    foreign key (isp_id, deck_id) references rate_decks (isp_id, id) on delete cascade
);

create index rate_deck_versions_in_force on rate_deck_versions (deck_id, effective_at desc)
    where status = 'published';

create table rates (
    isp_id          bigint not null,
    version_id      bigint not null,
    prefix          text not null check (prefix ~ '^[0-9]{1,15}$'),
    description     text not null default '' check (length(description) <= 200),
    per_minute      amount not null check (per_minute >= 0),
    connection_fee  amount not null default 0 check (connection_fee >= 0),
    increment_first integer not null default 1 check (increment_first between 1 and 9999),
    increment_step  integer not null default 1 check (increment_step between 1 and 9999),
    dest_class      text not null default 'international'
                        check (dest_class in ('domestic', 'international', 'premium', 'satellite')),
    primary key (version_id, prefix),
    foreign key (isp_id, version_id) references rate_deck_versions (isp_id, id) on delete cascade
);

-- A customer card is built from carrier cards (its sources) with profit rules per prefix.
create table deck_sources (
    isp_id          bigint not null,
    deck_id         bigint not null,
    source_deck_id  bigint not null,
    primary key (deck_id, source_deck_id),
    foreign key (isp_id, deck_id) references rate_decks (isp_id, id) on delete cascade,
    foreign key (isp_id, source_deck_id) references rate_decks (isp_id, id) on delete cascade
);

create table profit_rules (
    isp_id          bigint not null,
    deck_id         bigint not null,
    prefix          text not null check (prefix ~ '^[0-9]{0,15}$'),
    kind            text not null check (kind in ('absolute', 'percent')),
    amount          amount not null,
    rounding        amount not null default 0.000001 check (rounding > 0),
    primary key (deck_id, prefix),
    foreign key (isp_id, deck_id) references rate_decks (isp_id, id) on delete cascade
);

-- Carriers in least-cost order or by priority (lower first).
alter table carriers add column lcr_priority integer not null default 100
    check (lcr_priority between 0 and 1000);

-- A service plan is also the package: fees, the customer card it sells from (none: "no rate
-- deck"), and the service deck - markup over carrier cost, pulse, free minutes, free zones,
-- per-area rates - which a "no service deck" plan leaves out.
alter table service_plans
    add column monthly_fee       amount not null default 0 check (monthly_fee >= 0),
    add column setup_fee         amount not null default 0 check (setup_fee >= 0),
    add column rate_deck_id      bigint,
    add column service_deck      boolean not null default false,
    add column markup_fixed      amount not null default 0 check (markup_fixed >= 0),
    add column markup_percent    amount not null default 0 check (markup_percent >= 0),
    add column pulse             integer check (pulse between 1 and 3600),
    add column free_minutes      integer not null default 0 check (free_minutes >= 0),
    add column did_setup_fee     amount not null default 0 check (did_setup_fee >= 0),
    add column did_monthly_fee   amount not null default 0 check (did_monthly_fee >= 0),
    add column did_per_minute    amount not null default 0 check (did_per_minute >= 0),
    add column e911_setup_fee    amount not null default 0 check (e911_setup_fee >= 0),
    add column e911_monthly_fee  amount not null default 0 check (e911_monthly_fee >= 0),
    add column fax_setup_fee     amount not null default 0 check (fax_setup_fee >= 0),
    add column fax_monthly_fee   amount not null default 0 check (fax_monthly_fee >= 0),
    add column fax_per_page      amount not null default 0 check (fax_per_page >= 0),
    add column allowed_classes   text[] not null default '{domestic,international}'
        check (allowed_classes <@ '{domestic,international,premium,satellite}'::text[]),
    add foreign key (isp_id, rate_deck_id) references rate_decks (isp_id, id);

-- Per-area rates override the markup; a free zone makes a prefix (or anything priced at or
-- under a cost) free. Both apply only with the service deck.
create table plan_area_rates (
    isp_id          bigint not null,
    plan_id         bigint not null,
    prefix          text not null check (prefix ~ '^[0-9]{1,15}$'),
    per_minute      amount not null check (per_minute >= 0),
    primary key (plan_id, prefix),
    foreign key (isp_id, plan_id) references service_plans (isp_id, id) on delete cascade
);

create table plan_free_zones (
    isp_id          bigint not null,
    plan_id         bigint not null,
    prefix          text not null check (prefix ~ '^[0-9]{0,15}$'),
    max_cost        amount check (max_cost >= 0),
    primary key (plan_id, prefix),
    foreign key (isp_id, plan_id) references service_plans (isp_id, id) on delete cascade
);

-- Per-DID charges and extras; a DID without a row is billed by its customer's plan.
create table did_billing (
    isp_id          bigint not null,
    did_id          bigint not null primary key,
    setup_fee       amount check (setup_fee >= 0),
    monthly_fee     amount check (monthly_fee >= 0),
    per_minute      amount check (per_minute >= 0),
    e911            boolean not null default false,
    fax             boolean not null default false,
    foreign key (isp_id, did_id) references dids (isp_id, id) on delete cascade
);

alter table customers
    add column low_balance_threshold amount check (low_balance_threshold >= 0),
    add column low_balance_email     text not null default '',
    add column low_balance_below     boolean not null default false,
    add column low_balance_crossings integer not null default 0,
    add column balance_suspended     boolean not null default false,
    add column daily_spend_cap       amount check (daily_spend_cap >= 0),
    add column hourly_spend_cap      amount check (hourly_spend_cap >= 0),
    add column calls_locked_at       timestamptz,
    add column calls_lock_reason     text not null default '',
    add column billing_day           integer not null default 1 check (billing_day between 1 and 28),
    add column period_start          date,
    add column next_billing_date     date;

alter table subscribers
    add column daily_spend_cap       amount check (daily_spend_cap >= 0),
    add column hourly_spend_cap      amount check (hourly_spend_cap >= 0),
    add column calls_locked_at       timestamptz,
    add column calls_lock_reason     text not null default '';

-- The ledger: every payment (+) and charge (-). A balance moves only by a row here: the
-- insert trigger adds the amount to the customer's balance in the same transaction, and a
-- direct update of a balance is refused.
create table ledger (
    id              bigint generated always as identity primary key,
    isp_id          bigint not null,
    customer_id     bigint not null,
    kind            text not null check (kind in ('payment', 'charge')),
    amount          amount not null check ((kind = 'payment') = (amount >= 0) and amount <> 0),
    balance_after   amount not null,
    description     text not null check (length(description) between 1 and 200),
    category        text not null default 'manual'
                        check (category in ('manual', 'call', 'monthly', 'setup', 'did', 'e911', 'fax')),
    cdr_id          bigint,
    created_at      timestamptz not null default clock_timestamp(),
    unique (isp_id, id),
    foreign key (isp_id, customer_id) references customers (isp_id, id) on delete cascade
);

create index ledger_customer on ledger (customer_id, id);
create index ledger_isp_time on ledger (isp_id, created_at);

create function ledger_moves_balance() returns trigger language plpgsql as $$
begin
    update customers set balance = balance + new.amount
        where id = new.customer_id and isp_id = new.isp_id
        returning balance into new.balance_after;
    return new;
end $$;

create trigger ledger_balance before insert on ledger
    for each row execute function ledger_moves_balance();

create function customers_balance_by_ledger() returns trigger language plpgsql as $$
begin
    if new.balance is distinct from old.balance and pg_trigger_depth() < 2 then
        raise exception 'a balance changes only through the ledger'
            using errcode = 'check_violation', constraint = 'customers_balance_by_ledger';
    end if;
    return new;
end $$;

create trigger customers_balance_guard before update of balance on customers
    for each row execute function customers_balance_by_ledger();

-- A call in progress holds money: what the longest call it may make would cost. The row is
-- written by the node that authorised the call, and settled (or recovered) into a CDR.
create table call_reservations (
    id              bigint generated always as identity primary key,
    isp_id          bigint not null,
    customer_id     bigint not null,
    subscriber_id   bigint,
    node            text not null,
    call_id         text not null check (length(call_id) between 1 and 255),
    direction       text not null check (direction in ('outbound', 'inbound', 'forwarded')),
    destination     e164 not null,
    amount          amount not null check (amount >= 0),
    max_duration_ms bigint check (max_duration_ms >= 0),
    free_minutes    integer not null default 0 check (free_minutes >= 0),
    rating          jsonb not null,
    started_at      timestamptz not null default clock_timestamp(),
    answered_at     timestamptz,
    last_seen_at    timestamptz,
    constraint call_reservations_call_key unique (isp_id, node, call_id),
    unique (isp_id, id),
    foreign key (isp_id, customer_id) references customers (isp_id, id) on delete cascade
);

create index call_reservations_customer on call_reservations (customer_id);
create index call_reservations_node on call_reservations (node, started_at);

-- One record per call, both legs, priced by the decks in force when it started.
create table cdrs (
    id              bigint generated always as identity primary key,
    isp_id          bigint not null,
    customer_id     bigint,
    tenant_id       bigint,
    subscriber_id   bigint,
    carrier_id      bigint,
    gateway_id      bigint,
    did_id          bigint,
    node            text not null default '',
    direction       text not null check (direction in ('outbound', 'inbound', 'forwarded', 'internal')),
    caller_dialled  text not null default '' check (length(caller_dialled) <= 64),
    caller_e164     e164,
    callee_dialled  text not null default '' check (length(callee_dialled) <= 64),
    callee_e164     e164,
    forwarded_e164  e164,
    started_at      timestamptz not null,
    answered_at     timestamptz,
    ended_at        timestamptz not null,
    duration_ms     bigint not null check (duration_ms >= 0),
    talk_ms         bigint not null check (talk_ms >= 0),
    billable_seconds integer not null default 0 check (billable_seconds >= 0),
    free_minutes    integer not null default 0 check (free_minutes >= 0),
    disposition     text not null check (disposition in ('answered', 'busy', 'no_answer', 'failed', 'cancelled')),
    sip_code        integer check (sip_code between 100 and 699),
    hangup_by       text not null default '' check (hangup_by in ('', 'caller', 'callee', 'system')),
    a_call_id       text not null check (length(a_call_id) between 1 and 255),
    b_call_id       text check (length(b_call_id) <= 255),
    prefix          text not null default '',
    dest_class      text not null default '',
    price_version_id bigint,
    cost_version_id bigint,
    cost            amount not null default 0,
    price           amount not null default 0,
    profit          amount generated always as (price - cost) stored,
    ledger_id       bigint,
    created_at      timestamptz not null default clock_timestamp(),
    constraint cdrs_call_key unique (isp_id, node, a_call_id),
    unique (isp_id, id),
    check (ended_at >= started_at),
    foreign key (isp_id, customer_id) references customers (isp_id, id) on delete set null (customer_id)
);

create index cdrs_isp_time on cdrs (isp_id, started_at);
create index cdrs_customer_time on cdrs (customer_id, started_at);
create index cdrs_subscriber_time on cdrs (subscriber_id, started_at);

-- Recurring and one-time charges, one row per account, item, kind and period: the unique
-- key is what makes a fee charged once even when two nodes or a restart bill it again.
create table recurring_charges (
    isp_id          bigint not null,
    customer_id     bigint not null,
    kind            text not null check (kind in ('monthly', 'setup', 'did', 'did_setup', 'e911',
                                                  'e911_setup', 'fax', 'fax_setup')),
    item_id         bigint not null default 0,
    period          text not null check (period ~ '^([0-9]{4}-[0-9]{2}|once)$'),
    amount          amount not null,
    ledger_id       bigint,
    created_at      timestamptz not null default clock_timestamp(),
    primary key (customer_id, kind, item_id, period),
    foreign key (isp_id, customer_id) references customers (isp_id, id) on delete cascade
);

create index customers_next_billing on customers (next_billing_date);
