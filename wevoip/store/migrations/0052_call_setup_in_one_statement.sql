-- A call's set-up writes in one statement, and a call that fails over to another carrier
-- counted against that carrier.
--
-- `set_up_call` admits a call (migration 0055's `admit_recorded_call` around 0075's
-- `admit_call`: the customer's, tenant's and carrier's limits, locked in that order, and
-- the row with what the call's record needs) and, for a call billing priced, writes
-- billing's reservation beside it (`p_amount` not null): the B2BUA's set-up is this one
-- statement after billing has read the locked account. A refusal comes back as a code
-- with nothing written. PL/pgSQL resolves the functions and columns it uses when it runs,
-- so the order of the migration files does not matter.
--
-- `move_call_to_carrier` counts a call against the carrier of the gateway it fails over
-- to, under that carrier's lock, or names why that carrier cannot take it.

create function set_up_call(p_isp bigint, p_customer bigint, p_tenant bigint, p_carrier bigint,
                            p_call_id text, p_node text, p_direction text,
                            p_subscriber bigint, p_did bigint, p_gateway bigint,
                            p_caller_dialled text, p_caller_e164 text,
                            p_callee_dialled text, p_callee_e164 text,
                            p_reserve_subscriber bigint default null, p_reserve_direction text default null,
                            p_destination text default null, p_amount numeric default null,
                            p_max_duration_ms bigint default null, p_free_minutes integer default 0,
                            p_rating jsonb default null, p_reserve_at timestamptz default null)
returns table (active_id bigint, started_at timestamptz, reservation_id bigint, refusal text,
               limit_value integer)
language plpgsql as $$
#variable_conflict use_column
declare
    v record;
    v_reservation bigint;
begin
    select * into v from admit_recorded_call(p_isp, p_customer, p_tenant, p_carrier, p_call_id, p_node,
                                             p_direction, p_subscriber, p_did, p_gateway, p_caller_dialled,
                                             p_caller_e164, p_callee_dialled, p_callee_e164);
    if v.active_id is not null and p_amount is not null then
        insert into call_reservations (isp_id, customer_id, subscriber_id, node, call_id, direction, destination,
                                       amount, max_duration_ms, free_minutes, rating, started_at)
            values (p_isp, p_customer, p_reserve_subscriber, p_node, p_call_id, p_reserve_direction, p_destination,
                    p_amount, p_max_duration_ms, p_free_minutes, p_rating, p_reserve_at)
            returning id into v_reservation;
    end if;
    return query select v.active_id, v.started_at, v_reservation, v.refusal, v.limit_value;
end $$;

create function move_call_to_carrier(p_isp bigint, p_active bigint, p_carrier bigint, p_gateway bigint)
returns table (refusal text, limit_value integer)
language plpgsql as $$
#variable_conflict use_column
declare
    v_enabled boolean;
    v_limit integer;
begin
    select k.enabled, k.max_concurrent_calls into v_enabled, v_limit from carriers k
        where k.isp_id = p_isp and k.id = p_carrier for update;
    if not found then
        return query select 'carrier missing', null::integer; return;
    end if;
    if not exists (select 1 from gateways g where g.isp_id = p_isp and g.id = p_gateway
                   and g.carrier_id = p_carrier) then
        return query select 'gateway missing', null::integer; return;
    end if;
    if not v_enabled then
        return query select 'carrier disabled', null::integer; return;
    end if;
    if v_limit is not null and (select count(*) from active_calls a
                                where a.carrier_id = p_carrier and a.id <> p_active) >= v_limit then
        return query select 'carrier limit', v_limit; return;
    end if;
    update active_calls set carrier_id = p_carrier, gateway_id = p_gateway where isp_id = p_isp and id = p_active;
    if not found then
        return query select 'call missing', null::integer; return;
    end if;
    return query select null::text, null::integer;
end $$;
