-- The nodes of the platform and the SIP address each takes requests from other nodes on:
-- a node holding a phone's TCP/TLS/WebSocket connection is where the others send that
-- phone's calls (the edge proxy, wevoip/sip/edge.py). Each node writes its own row at start.

create table nodes (
    name        text primary key check (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$'),
    sip_host    text not null check (length(sip_host) between 1 and 64),
    sip_port    integer not null check (sip_port between 1 and 65535),
    started_at  timestamptz not null default now()
);
