-- What the registrar needs to reach a phone behind NAT besides its source and transport:
-- the RFC 5626 reg-id next to instance_id, and the local listener the REGISTER came in on,
-- so requests to the phone leave from the socket its NAT pinhole was opened to.

alter table registrations
    add column reg_id integer not null default 0 check (reg_id >= 0),
    add column local_address text not null default '' check (length(local_address) <= 64);
