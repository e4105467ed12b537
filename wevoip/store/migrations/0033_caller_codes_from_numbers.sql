-- A caller's _CC and _AC come from its E.164 number (wevoip/routing/numbering.py, as the
-- router uses them), so the per-subscriber columns of 0030 would be a second truth that
-- the dialplan box shows and calls ignore.
alter table subscribers drop column country_code, drop column area_code;
