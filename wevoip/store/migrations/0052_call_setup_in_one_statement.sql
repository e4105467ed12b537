-- A call's set-up writes in one statement, and a call that fails over to another carrier
-- counted against that carrier.
--
-- `set_up_call` admits a call against its customer's, tenant's and carrier's
-- concurrent-call limits (locking the customer, then the tenant, then the carrier: the
-- order every admission keeps, so two cannot deadlock), inserts it with what its record
-- needs should the node die (migration 0055's columns: PL/pgSQL resolves them when it
-- runs, so the order of the files does not matter) and, for a call billing priced, writes
-- billing's reservation beside it (`p_amount` not null): the B2BUA's set-up is this one
-- statement after billing has read the locked account. A refusal comes back as a code
-- with nothing written. It takes over from 0075's `admit_call` and 0055's
-- `admit_recorded_call`, which stay for nodes not yet upgraded.
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
    v_status text;
    v_limit integer;
    v_enabled boolean;
    v_id bigint;
    v_started timestamptz;
    v_reservation bigint;
begin
    select c.status, c.max_concurrent_calls into v_status, v_limit
        from customers c where c.isp_id = p_isp and c.id = p_customer for update;
    if not found then
        return query select null::bigint, null::timestamptz, null::bigint, 'customer missing', null::integer;
        return;
    end if;
    if v_status <> 'ACTIVE' then
        return query select null::bigint, null::timestamptz, null::bigint, 'customer ' || v_status, null::integer;
        return;
    end if;
    if v_limit is not null and (select count(*) from active_calls a where a.customer_id = p_customer) >= v_limit then
        return query select null::bigint, null::timestamptz, null::bigint, 'customer limit', v_limit; return;
    end if;
    select t.max_concurrent_calls into v_limit from tenants t
        where t.isp_id = p_isp and t.id = p_tenant and t.customer_id = p_customer for update;
    if not found then
        return query select null::bigint, null::timestamptz, null::bigint, 'tenant missing', null::integer; return;
    end if;
    if v_limit is not null and (select count(*) from active_calls a where a.tenant_id = p_tenant) >= v_limit then
        return query select null::bigint, null::timestamptz, null::bigint, 'tenant limit', v_limit; return;
    end if;
    if p_carrier is not null then
        select k.enabled, k.max_concurrent_calls into v_enabled, v_limit from carriers k
            where k.isp_id = p_isp and k.id = p_carrier for update;
        if not found then
            return query select null::bigint, null::timestamptz, null::bigint, 'carrier missing', null::integer;
            return;
        end if;
        if not v_enabled then
            return query select null::bigint, null::timestamptz, null::bigint, 'carrier disabled', null::integer;
            return;
        end if;
        if v_limit is not null
                and (select count(*) from active_calls a where a.carrier_id = p_carrier) >= v_limit then
            return query select null::bigint, null::timestamptz, null::bigint, 'carrier limit', v_limit; return;
        end if;
    end if;
    insert into active_calls (isp_id, customer_id, tenant_id, carrier_id, call_id, node, direction,
                              subscriber_id, did_id, gateway_id, caller_dialled, caller_e164,
                              callee_dialled, callee_e164)
        values (p_isp, p_customer, p_tenant, p_carrier, p_call_id, p_node, p_direction,
                p_subscriber, p_did, p_gateway, left(coalesce(p_caller_dialled, ''), 64), p_caller_e164,
                left(coalesce(p_callee_dialled, ''), 64), p_callee_e164)
        returning id, started_at into v_id, v_started;
    if p_amount is not null then
        insert into call_reservations (isp_id, customer_id, subscriber_id, node, call_id, direction, destination,
                                       amount, max_duration_ms, free_minutes, rating, started_at)
            values (p_isp, p_customer, p_reserve_subscriber, p_node, p_call_id, p_reserve_direction, p_destination,
                    p_amount, p_max_duration_ms, p_free_minutes, p_rating, p_reserve_at)
            returning id into v_reservation;
    end if;
    return query select v_id, v_started, v_reservation, null::text, null::integer;
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
