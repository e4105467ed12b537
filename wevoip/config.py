"""
The one configuration file, its schema and its checks.

Every key the file may hold is a field of a section dataclass below, with a default that is
safe and a check that turns a bad value into a `ConfigError` naming the key. Start-up stops
on the first such error, so a typo never runs a half-configured switch.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable


class ConfigError(Exception):
    """A configuration value is missing, unknown, of the wrong type or impossible."""

    def __init__(self, key: str, problem: str):
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


@dataclass(frozen=True)
class Listen:
    """An address to bind: an IP literal (v4 or v6) and a port; port 0 lets the OS choose."""

    host: str
    port: int

    @property
    def is_ipv6(self) -> bool:
        return ":" in self.host

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if self.is_ipv6 else f"{self.host}:{self.port}"


Check = Callable[[str, Any, Path], Any]


def _key(default: Any, check: Check, doc: str = "") -> Any:
    return field(default=default, metadata={"check": check, "doc": doc})


def _type_name(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", str: "a string", list: "an array",
            float: "a number", dict: "a table"}.get(type(value), type(value).__name__)


def _string(key: str, value: Any, base: Path) -> str:
    if not isinstance(value, str):
        raise ConfigError(key, f"expected a string, got {_type_name(value)}")
    return value


def _name(key: str, value: Any, base: Path) -> str:
    value = _string(key, value, base)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", value):
        raise ConfigError(key, f"{value!r} is not a name (letters, digits, '.', '_', '-')")
    return value


def _path(key: str, value: Any, base: Path) -> Path:
    value = _string(key, value, base)
    if not value:
        raise ConfigError(key, "must not be empty")
    return (base / value).resolve()


def _optional_path(key: str, value: Any, base: Path) -> Path | None:
    return _path(key, value, base) if _string(key, value, base) else None


def _int_between(low: int, high: int) -> Check:
    def check(key: str, value: Any, base: Path) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, f"expected an integer, got {_type_name(value)}")
        if not low <= value <= high:
            raise ConfigError(key, f"{value} is out of range ({low} to {high})")
        return value
    return check


def _ip(key: str, value: Any, base: Path) -> str:
    value = _string(key, value, base)
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ConfigError(key, f"{value!r} is not an IP address") from None


def _optional_ip(key: str, value: Any, base: Path) -> str:
    return _ip(key, value, base) if _string(key, value, base) else ""


def _choice(*choices: str) -> Check:
    def check(key: str, value: Any, base: Path) -> str:
        if _string(key, value, base) not in choices:
            raise ConfigError(key, f"{value!r} is not one of {', '.join(choices)}")
        return value
    return check


def parse_listen(key: str, value: Any, base: Path | None = None) -> Listen:
    text = _string(key, value, Path())
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([0-9.]+):(\d{1,5})", text)
    if not match:
        raise ConfigError(key, f"{text!r} is not 'address:port' (IPv6 as '[address]:port')")
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    host = _ip(key, host, Path())
    if (":" in host) != bool(match.group(1)):
        raise ConfigError(key, f"{text!r}: an IPv6 address goes in brackets, IPv4 does not")
    if port > 65535:
        raise ConfigError(key, f"port {port} is out of range (0 to 65535)")
    return Listen(host, port)


def _optional_listen(key: str, value: Any, base: Path) -> Listen | None:
    return parse_listen(key, value) if _string(key, value, base) else None


def _node_address(key: str, value: Any, base: Path) -> Listen | None:
    """Where the other nodes send this one SIP: a real address and port, not a wildcard."""
    listen = _optional_listen(key, value, base)
    if listen is not None and (listen.port == 0 or ipaddress.ip_address(listen.host).is_unspecified):
        raise ConfigError(key, f"{listen} is not an address other nodes can send to (no wildcard, no port 0)")
    return listen


def _listens(key: str, value: Any, base: Path) -> tuple[Listen, ...]:
    if not isinstance(value, list):
        raise ConfigError(key, f"expected an array of 'address:port' strings, got {_type_name(value)}")
    result = tuple(parse_listen(f"{key}[{i}]", item) for i, item in enumerate(value))
    if len(set(result)) != len(result):
        raise ConfigError(key, "the same address is listed twice")
    return result


def _flag(key: str, value: Any, base: Path) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(key, f"expected true or false, got {_type_name(value)}")
    return value


def _host(key: str, value: Any, base: Path) -> str:
    value = _string(key, value, base).strip().lower()
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    if not re.fullmatch(r"([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", value):
        raise ConfigError(key, f"{value!r} is neither an IP address nor a host name")
    return value


def _optional_host(key: str, value: Any, base: Path) -> str:
    """A host name or an IP literal (IPv6 without brackets), or empty."""
    return _host(key, value, base) if _string(key, value, base) else ""


def _mail_address(key: str, value: Any, base: Path) -> str:
    value = _string(key, value, base)
    if not re.fullmatch(r"[^\s@<>]+@[^\s@<>]+", value):
        raise ConfigError(key, f"{value!r} is not an e-mail address")
    return value


def _public_url(key: str, value: Any, base: Path) -> str:
    value = _string(key, value, base).rstrip("/")
    if value and not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:\d{1,5})?(/[A-Za-z0-9._~/-]*)?", value):
        raise ConfigError(key, f"{value!r} is not an http:// or https:// URL")
    return value


def _dsn(key: str, value: Any, base: Path) -> str:
    value = _string(key, value, base)
    if value and not (value.startswith(("postgresql://", "postgres://")) or "=" in value):
        raise ConfigError(key, "expected a libpq connection string or a postgresql:// URI")
    return value


@dataclass(frozen=True)
class NodeConfig:
    name: str = _key("wevoip-1", _name)
    data_dir: Path = _key(Path("var"), _path)


@dataclass(frozen=True)
class StoreConfig:
    dsn: str = _key("", _dsn)
    pool_size: int = _key(4, _int_between(1, 64))
    embedded_user: str = _key("wevoip", _name)


@dataclass(frozen=True)
class SipConfig:
    udp: tuple[Listen, ...] = _key((), _listens)
    tcp: tuple[Listen, ...] = _key((), _listens)
    tls: tuple[Listen, ...] = _key((), _listens)
    ws: tuple[Listen, ...] = _key((), _listens)
    wss: tuple[Listen, ...] = _key((), _listens)
    tls_certificate: Path | None = _key(None, _optional_path)
    tls_private_key: Path | None = _key(None, _optional_path)
    advertise: str = _key("", _optional_host)
    node_address: Listen | None = _key(None, _node_address)


def _bool(key: str, value: Any, base: Path) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(key, f"expected true or false, got {_type_name(value)}")
    return value


def _networks(key: str, value: Any, base: Path) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError(key, f"expected an array of networks like '10.0.0.0/8', got {_type_name(value)}")
    result = []
    for index, item in enumerate(value):
        try:
            result.append(str(ipaddress.ip_network(_string(f"{key}[{index}]", item, base), strict=False)))
        except ValueError:
            raise ConfigError(f"{key}[{index}]", f"{item!r} is not an IP network") from None
    return tuple(result)


def _words(key: str, value: Any, base: Path) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError(key, f"expected an array of strings, got {_type_name(value)}")
    words = tuple(_string(f"{key}[{i}]", item, base).strip() for i, item in enumerate(value))
    for index, word in enumerate(words):
        if not 2 <= len(word) <= 100:
            raise ConfigError(f"{key}[{index}]", "must be 2 to 100 characters")
    return words


def _digest_algorithms(key: str, value: Any, base: Path) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError(key, "expected a non-empty array of \"SHA-256\" and \"MD5\"")
    algorithms = tuple(_string(f"{key}[{i}]", item, base).upper() for i, item in enumerate(value))
    for index, algorithm in enumerate(algorithms):
        if algorithm not in ("SHA-256", "MD5"):
            raise ConfigError(f"{key}[{index}]", f"{algorithm!r} is not SHA-256 or MD5")
    if len(set(algorithms)) != len(algorithms):
        raise ConfigError(key, "an algorithm is listed twice")
    return algorithms


@dataclass(frozen=True)
class RegistrarConfig:
    min_expires: int = _key(60, _int_between(1, 86400))
    max_expires: int = _key(3600, _int_between(1, 86400))
    default_expires: int = _key(3600, _int_between(1, 86400))
    max_contacts: int = _key(10, _int_between(1, 100))
    options_ping_interval: int = _key(0, _int_between(0, 3600))


@dataclass(frozen=True)
class SipSecurityConfig:
    digest_algorithms: tuple[str, ...] = _key(("SHA-256", "MD5"), _digest_algorithms)
    digest_md5_user_agents: tuple[str, ...] = _key(("sipsak", "baresip v0.", "baresip v1.", "friendly-scanner"),
                                                   _words)
    nonce_lifetime: int = _key(300, _int_between(10, 86400))
    tracked_nonces: int = _key(100_000, _int_between(100, 10_000_000))
    trusted_networks: tuple[str, ...] = _key((), _networks)
    ban_after_failures: int = _key(5, _int_between(1, 1000))
    ban_after_user_failures: int = _key(20, _int_between(1, 100_000))
    failure_window: int = _key(300, _int_between(1, 86400))
    ban_seconds: int = _key(1800, _int_between(1, 30 * 86400))
    user_lock_seconds: int = _key(3600, _int_between(0, 30 * 86400))
    known_source_days: int = _key(30, _int_between(1, 366))
    requests_per_second: int = _key(50, _int_between(1, 1_000_000))
    request_burst: int = _key(200, _int_between(1, 1_000_000))
    drop_scanners: bool = _key(True, _bool)
    scanner_user_agents: tuple[str, ...] = _key(
        ("friendly-scanner", "sipvicious", "sipcli", "VaxSIPUserAgent", "sundayddr", "iWar",
         "sip-scan", "SIPScan", "pplsip", "smap"), _words)
    max_tracked: int = _key(100_000, _int_between(100, 10_000_000))
    max_bans: int = _key(100_000, _int_between(10, 10_000_000))


def _names(key: str, value: Any, base: Path) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError(key, f"expected an array of names, got {_type_name(value)}")
    return tuple(_name(f"{key}[{i}]", item, base) for i, item in enumerate(value))


def _feature_codes(key: str, value: Any, base: Path) -> tuple[tuple[str, str], ...]:
    """A table of code = application; a code starts with '*' or '#', so it never shadows
    an extension or a number."""
    if not isinstance(value, dict):
        raise ConfigError(key, f"expected a table of code = application, got {_type_name(value)}")
    codes = []
    for code, name in value.items():
        if not re.fullmatch(r"[*#][0-9*#]{1,15}", code):
            raise ConfigError(f"{key}.{code}", "a feature code is '*' or '#' and up to 15 digits, '*' or '#'")
        codes.append((code, _name(f"{key}.{code}", name, base)))
    return tuple(codes)


@dataclass(frozen=True)
class CallsConfig:
    no_answer_seconds: int = _key(120, _int_between(1, 3600))
    progress_seconds: int = _key(5, _int_between(0, 60))
    dialplan_preset: str = _key("us", _name)
    applications: tuple[str, ...] = _key(("echo", "announcement"), _names)
    feature_codes: tuple[tuple[str, str], ...] = _key((("*43", "echo"),), _feature_codes)
    session_expires_seconds: int = _key(1800, _int_between(0, 86400))
    min_se_seconds: int = _key(90, _int_between(90, 86400))
    refused_records_per_second: int = _key(20, _int_between(0, 100_000))


@dataclass(frozen=True)
class WebConfig:
    http: tuple[Listen, ...] = _key((Listen("127.0.0.1", 8080),), _listens)
    public_url: str = _key("", _public_url)
    session_hours: int = _key(12, _int_between(1, 24 * 30))
    session_idle_minutes: int = _key(120, _int_between(5, 24 * 60))
    login_window_minutes: int = _key(15, _int_between(1, 24 * 60))
    login_failures_per_account: int = _key(5, _int_between(1, 1000))
    login_failures_per_source: int = _key(20, _int_between(1, 100000))


@dataclass(frozen=True)
class ConnectionsConfig:
    sip_max: int = _key(10_000, _int_between(1, 1_000_000))
    sip_max_per_source: int = _key(128, _int_between(1, 1_000_000))
    web_max: int = _key(1024, _int_between(1, 1_000_000))
    web_max_per_source: int = _key(64, _int_between(1, 1_000_000))
    reserved_descriptors: int = _key(256, _int_between(32, 1_000_000))
    idle_seconds: int = _key(180, _int_between(10, 86400))
    tls_handshake_seconds: int = _key(10, _int_between(1, 300))
    ws_upgrade_seconds: int = _key(10, _int_between(1, 300))
    web_idle_seconds: int = _key(60, _int_between(5, 3600))
    web_header_seconds: int = _key(20, _int_between(1, 300))


@dataclass(frozen=True)
class ManholeConfig:
    listen: Listen | None = _key(Listen("127.0.0.1", 2222), _optional_listen)
    authorized_keys: Path | None = _key(None, _optional_path)


@dataclass(frozen=True)
class MediaConfig:
    rtp_address: str = _key("127.0.0.1", _ip)
    rtp_port_min: int = _key(20000, _int_between(1024, 65534))
    rtp_port_max: int = _key(29999, _int_between(1025, 65535))
    advertised_address: str = _key("", _optional_ip)
    no_media_timeout_ms: int = _key(60_000, _int_between(1_000, 86_400_000))
    hold_timeout_ms: int = _key(3_600_000, _int_between(1_000, 86_400_000))
    relatch_after_ms: int = _key(2_000, _int_between(0, 60_000))
    forwarder: str = _key("process", _choice("process", "thread"))
    webrtc_consent_timeout_ms: int = _key(30_000, _int_between(1_000, 300_000))
    webrtc_setup_timeout_ms: int = _key(20_000, _int_between(1_000, 120_000))


def _directories(key: str, value: Any, base: Path) -> tuple[Path, ...]:
    if not isinstance(value, list):
        raise ConfigError(key, f"expected an array of folder paths, got {_type_name(value)}")
    folders = tuple(_path(f"{key}[{i}]", item, base) for i, item in enumerate(value))
    for index, folder in enumerate(folders):
        if not folder.is_dir():
            raise ConfigError(f"{key}[{index}]", f"{folder} is not a folder")
    return folders


@dataclass(frozen=True)
class PluginsConfig:
    directories: tuple[Path, ...] = _key((), _directories)


def _dns_servers(key: str, value: Any, base: Path) -> tuple[Listen, ...]:
    servers = _listens(key, value, base)
    for index, server in enumerate(servers):
        if server.port == 0:
            raise ConfigError(f"{key}[{index}]", "a DNS server needs its port (53 as a rule)")
    return servers


@dataclass(frozen=True)
class DnsConfig:
    servers: tuple[Listen, ...] = _key((), _dns_servers)
    timeout_seconds: int = _key(5, _int_between(1, 60))
    gateway_ttl_floor_seconds: int = _key(30, _int_between(1, 3600))
    gateway_ttl_ceiling_seconds: int = _key(3600, _int_between(1, 86400))


@dataclass(frozen=True)
class WebhooksConfig:
    timeout_seconds: int = _key(10, _int_between(1, 120))
    max_attempts: int = _key(8, _int_between(1, 50))


@dataclass(frozen=True)
class MailConfig:
    relay_host: str = _key("", _optional_host)
    relay_port: int = _key(25, _int_between(1, 65535))
    starttls: bool = _key(False, _flag)
    username: str = _key("", _string)
    password: str = _key("", _string)
    sender: str = _key("wevoip@localhost", _mail_address)
    timeout_seconds: int = _key(60, _int_between(1, 600))


@dataclass(frozen=True)
class BillingConfig:
    recurring_interval_seconds: int = _key(3600, _int_between(60, 86400))
    max_call_seconds: int = _key(7200, _int_between(60, 86400))
    heartbeat_seconds: int = _key(30, _int_between(1, 600))
    dead_node_seconds: int = _key(600, _int_between(60, 86400))


@dataclass(frozen=True)
class Config:
    node: NodeConfig = field(default_factory=NodeConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    sip: SipConfig = field(default_factory=SipConfig)
    registrar: RegistrarConfig = field(default_factory=RegistrarConfig)
    sip_security: SipSecurityConfig = field(default_factory=SipSecurityConfig)
    calls: CallsConfig = field(default_factory=CallsConfig)
    web: WebConfig = field(default_factory=WebConfig)
    connections: ConnectionsConfig = field(default_factory=ConnectionsConfig)
    manhole: ManholeConfig = field(default_factory=ManholeConfig)
    media: MediaConfig = field(default_factory=MediaConfig)
    plugins: PluginsConfig = field(default_factory=PluginsConfig)
    dns: DnsConfig = field(default_factory=DnsConfig)
    webhooks: WebhooksConfig = field(default_factory=WebhooksConfig)
    mail: MailConfig = field(default_factory=MailConfig)
    billing: BillingConfig = field(default_factory=BillingConfig)

    def with_overrides(self, *, dsn: str | None = None, data_dir: str | None = None) -> Config:
        """Apply the twistd command-line options, which win over the file."""
        config = self
        if dsn is not None:
            config = replace(config, store=replace(config.store, dsn=_dsn("--dsn", dsn, Path())))
        if data_dir is not None:
            path = _path("--data-dir", data_dir, Path.cwd())
            config = replace(config, node=replace(config.node, data_dir=path))
        return config


def _section(name: str, cls: type, table: Any, base: Path) -> Any:
    if not isinstance(table, dict):
        raise ConfigError(name, f"expected a table, got {_type_name(table)}")
    known = {f.name: f for f in fields(cls)}
    for key in table:
        if key not in known:
            raise ConfigError(f"{name}.{key}", "unknown key")
    values = {key: known[key].metadata["check"](f"{name}.{key}", value, base)
              for key, value in table.items()}
    return cls(**values)


def _check_whole(config: Config) -> None:
    media = config.media
    if media.rtp_port_min % 2:
        raise ConfigError("media.rtp_port_min", "RTP ports start on an even number")
    if media.rtp_port_max - media.rtp_port_min < 1:
        raise ConfigError("media.rtp_port_max", "must be above media.rtp_port_min")
    if ipaddress.ip_address(media.rtp_address).is_unspecified and not media.advertised_address:
        raise ConfigError("media.advertised_address",
                          f"must be set when media.rtp_address is {media.rtp_address}, "
                          "since phones cannot send to a wildcard")
    if (media.advertised_address
            and ipaddress.ip_address(media.advertised_address).version
            != ipaddress.ip_address(media.rtp_address).version):
        raise ConfigError("media.advertised_address", "is not of the address family of media.rtp_address")
    sip = config.sip
    if bool(sip.tls_certificate) != bool(sip.tls_private_key):
        raise ConfigError("sip.tls_private_key" if sip.tls_certificate else "sip.tls_certificate",
                          "the certificate and its private key are set together")
    registrar = config.registrar
    if not registrar.min_expires <= registrar.default_expires <= registrar.max_expires:
        raise ConfigError("registrar.default_expires",
                          "must lie between registrar.min_expires and registrar.max_expires")
    calls = config.calls
    if calls.session_expires_seconds and calls.session_expires_seconds < calls.min_se_seconds:
        raise ConfigError("calls.session_expires_seconds", "must be 0 or at least calls.min_se_seconds")
    if config.sip_security.request_burst < config.sip_security.requests_per_second:
        raise ConfigError("sip_security.request_burst", "must be at least sip_security.requests_per_second")
    if config.billing.dead_node_seconds < 3 * config.billing.heartbeat_seconds:
        raise ConfigError("billing.dead_node_seconds", "must be at least three billing.heartbeat_seconds")
    if config.dns.gateway_ttl_ceiling_seconds < config.dns.gateway_ttl_floor_seconds:
        raise ConfigError("dns.gateway_ttl_ceiling_seconds", "must be at least dns.gateway_ttl_floor_seconds")
    if bool(config.mail.username) != bool(config.mail.password):
        raise ConfigError("mail.password" if config.mail.username else "mail.username",
                          "the relay login needs both a username and a password")
    connections = config.connections
    if connections.sip_max_per_source > connections.sip_max:
        raise ConfigError("connections.sip_max_per_source", "must not be above connections.sip_max")
    if connections.web_max_per_source > connections.web_max:
        raise ConfigError("connections.web_max_per_source", "must not be above connections.web_max")
    stream_ports: dict[tuple[str, int], str] = {}
    streams = [("sip.tcp", sip.tcp), ("sip.tls", sip.tls), ("sip.ws", sip.ws),
               ("sip.wss", sip.wss), ("web.http", config.web.http)]
    if config.manhole.listen:
        streams.append(("manhole.listen", (config.manhole.listen,)))
    for key, listens in streams:
        for listen in listens:
            where = (listen.host, listen.port)
            if listen.port and where in stream_ports:
                raise ConfigError(key, f"{listen} is also used by {stream_ports[where]}")
            stream_ports[where] = key


def parse_config(text: str, base: Path) -> Config:
    """Check a TOML text; relative paths in it are taken from `base`, the file's folder."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError("(file)", f"not valid TOML: {error}") from None
    sections = {f.name: f.default_factory for f in fields(Config)}
    values = {}
    for name, table in document.items():
        if name not in sections:
            raise ConfigError(name, "unknown section")
        values[name] = _section(name, type(sections[name]()), table, base)
    config = Config(**values)
    if not config.node.data_dir.is_absolute():
        config = replace(config, node=replace(config.node, data_dir=(base / config.node.data_dir).resolve()))
    _check_whole(config)
    return config


def load_config(path: str | Path) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError("--config", f"cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError("--config", f"{path} is not UTF-8 text") from None
    return parse_config(text, path.resolve().parent)


def documented_keys() -> dict[str, tuple[str, ...]]:
    """Every section and its keys, so a test can hold the sample file to the schema."""
    return {f.name: tuple(k.name for k in fields(type(f.default_factory())))
            for f in fields(Config)}
