import re
from pathlib import Path

import pytest

from wevoip.config import ConfigError, Listen, documented_keys, load_config, parse_config

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "etc" / "wevoip.toml"


def error_for(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, Path("/srv/wevoip/etc"))
    return caught.value


def test_the_sample_file_holds_every_key_and_loads():
    sample = SAMPLE.read_text()
    sections = re.findall(r"^\[(\w+)\]", sample, re.M)
    assert sections == list(documented_keys())
    for section, keys in documented_keys().items():
        body = sample.split(f"[{section}]", 1)[1].split("\n[", 1)[0]
        written = re.findall(r"^(\w+) =", body, re.M)
        assert written == list(keys), section
    config = load_config(SAMPLE)
    assert config.node.data_dir == (ROOT / "var").resolve()
    assert config.sip.udp == (Listen("0.0.0.0", 5060),)
    assert config.manhole.authorized_keys == ROOT / "etc" / "manhole_authorized_keys"


def test_an_empty_file_gives_safe_defaults():
    config = parse_config("", Path("/srv/wevoip/etc"))
    assert config.web.http == (Listen("127.0.0.1", 8080),)
    assert config.manhole.listen == Listen("127.0.0.1", 2222)
    assert config.manhole.authorized_keys is None
    assert config.store.dsn == ""
    assert config.node.data_dir == Path("/srv/wevoip/etc/var")


def test_relative_paths_are_taken_from_the_files_folder():
    config = parse_config('[node]\ndata_dir = "../state"\n', Path("/srv/wevoip/etc"))
    assert config.node.data_dir == Path("/srv/wevoip/state")


@pytest.mark.parametrize("text, key, words", [
    ("[sip]\nudpp = []\n", "sip.udpp", "unknown key"),
    ("[sipp]\n", "sipp", "unknown section"),
    ("[store]\npool_size = '4'\n", "store.pool_size", "expected an integer"),
    ("[store]\npool_size = 0\n", "store.pool_size", "out of range"),
    ("[store]\npool_size = true\n", "store.pool_size", "expected an integer"),
    ("[web]\nhttp = '127.0.0.1:80'\n", "web.http", "expected an array"),
    ("[web]\nhttp = ['127.0.0.1:70000']\n", "web.http[0]", "out of range"),
    ("[web]\nhttp = ['localhost:80']\n", "web.http[0]", "not 'address:port'"),
    ("[web]\nhttp = ['::1:80']\n", "web.http[0]", "not 'address:port'"),
    ("[sip]\nudp = ['0.0.0.0:5060', '[::1]:5060', '300.1.1.1:5060']\n", "sip.udp[2]", "not an IP address"),
    ("[sip]\ntcp = ['0.0.0.0:5060', '0.0.0.0:5060']\n", "sip.tcp", "twice"),
    ("[sip]\ntcp = ['127.0.0.1:8080']\n", "web.http", "also used by sip.tcp"),
    ("[media]\nrtp_port_min = 20001\n", "media.rtp_port_min", "even"),
    ("[sip_security]\ntrusted_networks = ['10.0.0.0/8', 'office']\n", "sip_security.trusted_networks[1]",
     "not an IP network"),
    ("[sip_security]\ndrop_scanners = 'yes'\n", "sip_security.drop_scanners", "true or false"),
    ("[sip_security]\nscanner_user_agents = ['x']\n", "sip_security.scanner_user_agents[0]", "2 to 100"),
    ("[sip_security]\nrequests_per_second = 100\nrequest_burst = 10\n", "sip_security.request_burst",
     "at least"),
    ("[sip_security]\ndigest_algorithms = ['SHA-512']\n", "sip_security.digest_algorithms[0]", "not SHA-256"),
    ("[sip_security]\ndigest_algorithms = []\n", "sip_security.digest_algorithms", "non-empty"),
    ("[sip_security]\ndigest_md5_user_agents = ['sipsak', 'x']\n", "sip_security.digest_md5_user_agents[1]",
     "2 to 100"),
    ("[sip_security]\nuser_lock_seconds = -1\n", "sip_security.user_lock_seconds", "out of range"),
    ("[sip_security]\nknown_source_days = 0\n", "sip_security.known_source_days", "out of range"),
    ("[registrar]\nmin_expires = 600\ndefault_expires = 300\n", "registrar.default_expires", "between"),
    ("[calls]\nmin_se_seconds = 60\n", "calls.min_se_seconds", "out of range"),
    ("[calls]\nrefused_records_per_second = -1\n", "calls.refused_records_per_second", "out of range"),
    ("[calls]\nmin_se_seconds = 600\nsession_expires_seconds = 300\n", "calls.session_expires_seconds",
     "at least calls.min_se_seconds"),
    ("[billing]\nheartbeat_seconds = 60\ndead_node_seconds = 120\n", "billing.dead_node_seconds",
     "three billing.heartbeat_seconds"),
    ("[mail]\nrelay_host = 'smtp relay'\n", "mail.relay_host", "neither an IP address nor a host name"),
    ("[mail]\nrelay_port = 0\n", "mail.relay_port", "out of range"),
    ("[mail]\nstarttls = 'yes'\n", "mail.starttls", "expected true or false"),
    ("[mail]\nsender = 'nobody'\n", "mail.sender", "not an e-mail address"),
    ("[mail]\nusername = 'wevoip'\n", "mail.password", "both a username and a password"),
    ("[mail]\ntimeout_seconds = 0\n", "mail.timeout_seconds", "out of range"),
    ("[connections]\nweb_header_seconds = 0\n", "connections.web_header_seconds", "out of range"),
    ("[web]\npublic_url = 'ftp://x'\n", "web.public_url", "not an http:// or https:// URL"),
    ("[web]\nsession_idle_minutes = 1\n", "web.session_idle_minutes", "out of range"),
    ("[media]\nrtp_port_min = 30000\nrtp_port_max = 20000\n", "media.rtp_port_max", "above"),
    ("[media]\nrtp_address = 'any'\n", "media.rtp_address", "not an IP address"),
    ("[media]\nrtp_address = '0.0.0.0'\n", "media.advertised_address", "must be set"),
    ("[media]\nadvertised_address = '::1'\n", "media.advertised_address", "address family"),
    ("[media]\nadvertised_address = 'relay.example'\n", "media.advertised_address", "not an IP address"),
    ("[media]\nno_media_timeout_ms = 10\n", "media.no_media_timeout_ms", "out of range"),
    ("[media]\nhold_timeout_ms = '1h'\n", "media.hold_timeout_ms", "expected an integer"),
    ("[media]\nrelatch_after_ms = -1\n", "media.relatch_after_ms", "out of range"),
    ("[media]\nforwarder = 'fork'\n", "media.forwarder", "not one of process, thread"),
    ("[media]\nwebrtc_consent_timeout_ms = 500\n", "media.webrtc_consent_timeout_ms", "out of range"),
    ("[media]\nwebrtc_setup_timeout_ms = 999\n", "media.webrtc_setup_timeout_ms", "out of range"),
    ("[sip]\ntls_certificate = 'cert.pem'\n", "sip.tls_private_key", "together"),
    ("[sip]\nadvertise = 'sip example.net'\n", "sip.advertise", "neither an IP address nor a host name"),
    ("[sip]\nnode_address = '0.0.0.0:5060'\n", "sip.node_address", "no wildcard, no port 0"),
    ("[sip]\nnode_address = '10.0.0.5:0'\n", "sip.node_address", "no wildcard, no port 0"),
    ("[sip]\nnode_address = 'node-a:5060'\n", "sip.node_address", "is not 'address:port'"),
    ("[node]\nname = 'my node'\n", "node.name", "not a name"),
    ("[store]\ndsn = 'nonsense'\n", "store.dsn", "connection string"),
    ("[node\n", "(file)", "not valid TOML"),
    ("node = 3\n", "node", "expected a table"),
    ("[plugins]\ndirectories = ['/nonexistent/folder']\n", "plugins.directories[0]", "not a folder"),
])
def test_bad_values_stop_with_the_key_named(text, key, words):
    error = error_for(text)
    assert error.key == key
    assert words in str(error)
    assert str(error).startswith(key + ":")


def test_ipv6_listeners_are_accepted():
    config = parse_config("[sip]\nudp = ['[::1]:5060', '[::]:0']\n", Path("/"))
    assert [str(listen) for listen in config.sip.udp] == ["[::1]:5060", "[::]:0"]
    assert config.sip.udp[0].is_ipv6


def test_command_line_overrides_win(tmp_path):
    path = tmp_path / "wevoip.toml"
    path.write_text("[store]\ndsn = 'host=/a dbname=x'\n")
    config = load_config(path).with_overrides(dsn="postgresql:///other", data_dir=str(tmp_path / "d"))
    assert config.store.dsn == "postgresql:///other"
    assert config.node.data_dir == tmp_path / "d"
    with pytest.raises(ConfigError, match="--dsn"):
        load_config(path).with_overrides(dsn="nonsense")


def test_an_unreadable_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="--config: cannot read"):
        load_config(tmp_path / "missing.toml")


def test_dns_servers_need_a_port_and_webhook_limits_are_bounded():
    config = parse_config('[dns]\nservers = ["127.0.0.1:5353"]\n', Path("/srv"))
    assert config.dns.servers == (Listen("127.0.0.1", 5353),) and config.webhooks.max_attempts == 8
    assert error_for('[dns]\nservers = ["127.0.0.1:0"]\n').key == "dns.servers[0]"
    assert error_for("[webhooks]\ntimeout_seconds = 0\n").key == "webhooks.timeout_seconds"


def test_the_gateway_ttl_bounds_are_checked_alone_and_together():
    config = parse_config("[dns]\ngateway_ttl_floor_seconds = 5\ngateway_ttl_ceiling_seconds = 600\n", Path("/srv"))
    assert (config.dns.gateway_ttl_floor_seconds, config.dns.gateway_ttl_ceiling_seconds) == (5, 600)
    assert error_for("[dns]\ngateway_ttl_floor_seconds = 0\n").key == "dns.gateway_ttl_floor_seconds"
    assert error_for("[dns]\ngateway_ttl_floor_seconds = 60\ngateway_ttl_ceiling_seconds = 30\n").key == \
        "dns.gateway_ttl_ceiling_seconds"


def test_connection_caps_and_timeouts_are_bounded_and_consistent():
    assert error_for("[connections]\nsip_max = 0\n").key == "connections.sip_max"
    assert error_for("[connections]\ntls_handshake_seconds = 0\n").key == "connections.tls_handshake_seconds"
    assert error_for("[connections]\nidle_seconds = 5\n").key == "connections.idle_seconds"
    assert error_for("[connections]\nreserved_descriptors = 8\n").key == "connections.reserved_descriptors"
    error = error_for("[connections]\nsip_max = 100\nsip_max_per_source = 200\n")
    assert error.key == "connections.sip_max_per_source" and "connections.sip_max" in error.problem
    assert error_for("[connections]\nweb_max = 10\n").key == "connections.web_max_per_source"
