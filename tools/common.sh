# Shared settings for the project's scripts (sourced, not run).
# Everything that outlives one checkout (the Python environment, the guest
# image) lives under ALTDRIVER_CACHE so that CI and fresh clones reuse it.
ALTDRIVER_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ALTDRIVER_CACHE=${ALTDRIVER_CACHE:-/var/cache/nova-altdriver}
PYTHON=${PYTHON:-python3}

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# A short content hash of files: caches are rebuilt when their inputs change.
content_hash() { cat "$@" | sha256sum | cut -c1-16; }

# Installs those of the named Debian packages that are missing.
install_packages() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" \
            || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        --no-install-recommends "${missing[@]}" >/dev/null
}
