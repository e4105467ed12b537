-- Which ways a call's media went, measured by the relay (and, for a browser leg, by the
-- WebRTC gateway) when the call ended: 'both', 'caller_only' (the callee sent nothing that
-- reached the caller), 'callee_only', or 'none'. NULL when nobody measured: an unanswered
-- call, a call the server answered itself, a call recovered after a crash, a relay that
-- could not count. `one_way_media` is the flag to filter on.
alter table cdrs add column media_flow text
    check (media_flow in ('both', 'caller_only', 'callee_only', 'none'));
alter table cdrs add column one_way_media boolean
    generated always as (media_flow in ('caller_only', 'callee_only')) stored;
create index cdrs_one_way_media on cdrs (isp_id, started_at) where one_way_media;
