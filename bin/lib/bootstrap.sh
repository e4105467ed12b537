# Sourced by bin/wevoip and bin/test: make the project's virtual environment on first use
# and reinstall only when pyproject.toml changes, so a second run starts at once.

wevoip_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
wevoip_venv=${WEVOIP_VENV:-$wevoip_root/.venv}

wevoip_python() {
    for candidate in python3.13 python3.12 python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    echo "WeVoIP needs Python 3.11 or newer; none was found on PATH." >&2
    return 1
}

# Debian ships venv and pip apart from the interpreter; as root we can add them.
wevoip_ensure_venv_module() {
    local python=$1
    "$python" -c 'import ensurepip, venv' 2>/dev/null && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
    else
        echo "Python's venv module is missing: install python3-venv." >&2
        return 1
    fi
}

# The phone console's JavaScript (JsSIP) comes from npm, pinned by package-lock.json, and
# is bundled for browsers by esbuild (also pinned) into wevoip/web/phone/build/, which the
# server serves; npm ci and the build run again only when package.json or the lock
# changes. As root on Debian, node and npm are installed when missing; otherwise their
# absence is reported and the node runs without the phone console's library.
wevoip_phone_dir=$wevoip_root/wevoip/web/phone

wevoip_bootstrap_npm() {
    local stamp=$wevoip_phone_dir/build/.wevoip-installed want
    want=$(cat "$wevoip_phone_dir/package.json" "$wevoip_phone_dir/package-lock.json" | sha256sum | cut -d' ' -f1)
    [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && return 0
    if ! command -v npm >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            echo "Installing Debian packages: nodejs npm" >&2
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null || return 1
        else
            echo "npm is missing, so the phone console's JsSIP is not built: install nodejs and npm." >&2
            return 0
        fi
    fi
    echo "Installing and bundling the phone console's JavaScript in $wevoip_phone_dir" >&2
    (cd "$wevoip_phone_dir" && npm ci --silent && npm run --silent build >/dev/null) || return 1
    echo "$want" >"$stamp"
}

# $1: the extras to install ("" or "test"). The stamp records pyproject.toml's hash for
# each set of extras; the test set includes everything the plain set has.
wevoip_bootstrap() {
    local extras=$1 python want stamp
    wevoip_bootstrap_npm || return 1
    want=$(sha256sum "$wevoip_root/pyproject.toml" | cut -d' ' -f1)
    if [ -x "$wevoip_venv/bin/python" ]; then
        for stamp in "$wevoip_venv/.installed-$extras" "$wevoip_venv/.installed-test"; do
            [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && return 0
        done
    else
        python=$(wevoip_python) || return 1
        wevoip_ensure_venv_module "$python" || return 1
        echo "Creating the virtual environment in $wevoip_venv" >&2
        "$python" -m venv "$wevoip_venv" || return 1
    fi
    echo "Installing WeVoIP${extras:+ with [$extras]} into $wevoip_venv" >&2
    "$wevoip_venv/bin/python" -m pip install -q --disable-pip-version-check \
        --config-settings editable_mode=compat \
        -e "$wevoip_root${extras:+[$extras]}" || return 1
    echo "$want" >"$wevoip_venv/.installed-$extras"
}
