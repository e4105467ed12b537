-- One lock order for a call's rows, and a record for every call refused before admission.
--
-- Every transaction that locks several of them takes a call's rows in this order:
-- active_calls, then call_reservations, then customers, tenants, carriers, subscribers,
-- isps (a CDR's and a ledger row's foreign keys share-lock their parents after the
-- customer). Admission locks customer, tenant, carrier and only inserts the call's rows;
-- settlement and recovery delete the call's row, then its reservation, then lock the
-- customer. The heartbeat took the reservations before the calls and the answer's mark
-- did too (in a WITH whose order PostgreSQL does not promise): each could deadlock with a
-- settlement. Both are functions now, calls first, each table's rows in id order. A
-- failover's count (`move_call_to_carrier`) locks the call's row before the carrier's.

create function touch_node_calls(p_node text, p_at timestamptz) returns integer
language plpgsql as $$
declare
    v_calls integer;
begin
    with locked as (select id from active_calls where node = p_node order by id for no key update)
    update active_calls a set last_seen_at = p_at from locked where a.id = locked.id;
    get diagnostics v_calls = row_count;
    with locked as (select id from call_reservations where node = p_node and answered_at is not null
                    order by id for no key update)
    update call_reservations r set last_seen_at = p_at from locked where r.id = locked.id;
    return v_calls;
end $$;

create function mark_call_answered(p_isp bigint, p_active bigint, p_reservation bigint, p_at timestamptz)
returns integer
language plpgsql as $$
declare
    v_calls integer;
    v_reservations integer;
begin
    update active_calls set answered_at = p_at, last_seen_at = p_at where isp_id = p_isp and id = p_active;
    get diagnostics v_calls = row_count;
    update call_reservations set answered_at = p_at, last_seen_at = p_at where isp_id = p_isp and id = p_reservation;
    get diagnostics v_reservations = row_count;
    return v_calls + v_reservations;
end $$;

-- A failover's count locked the carrier before the call's row: the call's row first now.
create or replace function move_call_to_carrier(p_isp bigint, p_active bigint, p_carrier bigint, p_gateway bigint)
returns table (refusal text, limit_value integer)
language plpgsql as $$
#variable_conflict use_column
declare
    v_enabled boolean;
    v_limit integer;
begin
    perform 1 from active_calls a where a.isp_id = p_isp and a.id = p_active for no key update;
    if not found then
        return query select 'call missing', null::integer; return;
    end if;
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
    return query select null::text, null::integer;
end $$;

-- A call refused before admission (403, 402, 404, 480, 503 ...) is a record too, at no
-- price, with the SIP code and the reason it was given: ASR and misroutes show in the
-- lists. Only attempts that named an ISP (an authenticated subscriber, or a carrier's
-- address) get one; a refused call may share its Call-ID with the attempt that follows
-- (after a 422, say), so the one-record-per-call key leaves refusals out.
alter table cdrs drop constraint cdrs_disposition_check;
alter table cdrs add constraint cdrs_disposition_check
    check (disposition in ('answered', 'busy', 'no_answer', 'failed', 'cancelled', 'refused'));
alter table cdrs add column reason text not null default '' check (length(reason) <= 200);
alter table cdrs drop constraint cdrs_call_key;
create unique index cdrs_call_key on cdrs (isp_id, node, a_call_id) where disposition <> 'refused';
