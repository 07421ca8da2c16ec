# shellcheck shell=bash
# Horizon for the all-in-one (sourced by aio.sh): the dashboard from the
# cloud's environment, served by Django's own server on 127.0.0.1:8080.
#
# Horizon's settings import `local.local_settings`: that package lives in
# $HORIZON_DIR, which is on PYTHONPATH, so nothing is written into the
# (shared, cached) environment. Static files are collected and compressed
# into $HORIZON_DIR/static once per environment and settings.

HORIZON_DIR=$STATE/horizon
HORIZON_PORT=8080

write_horizon_settings() {
    mkdir -p "$HORIZON_DIR/local"
    : >"$HORIZON_DIR/local/__init__.py"
    render local_settings.py "$HORIZON_DIR/local/local_settings.py"
}

# prepare_horizon_static DJANGO_ADMIN...: collectstatic + compress, only when
# the environment or the settings changed since the last time
prepare_horizon_static() {
    local key stamp=$HORIZON_DIR/.static-stamp
    key=$(content_hash <(echo "$VENV") "$HORIZON_DIR/local/local_settings.py")
    [ "$(cat "$stamp" 2>/dev/null)" = "$key" ] && [ -d "$HORIZON_DIR/static" ] && return 0
    log "horizon: collectstatic + compress"
    rm -rf "$HORIZON_DIR/static" "$stamp"
    { "$@" collectstatic --noinput && "$@" compress --force; } \
        >>"$LOGS/horizon-static.log" 2>&1 \
        || die "horizon: static files failed (log: $LOGS/horizon-static.log)"
    echo "$key" >"$stamp"
}

# Glance's metadata definitions, once: Horizon lists them in the launch
# wizard and "Update Metadata", and answers 500 while there are none
load_glance_metadefs() {
    [ -f "$STATE/.glance-metadefs" ] && return 0
    log "glance: metadata definitions (for Horizon)"
    "$VENV/bin/glance-manage" --config-file "$ETC/glance/glance-api.conf" \
        db_load_metadefs "$VENV/etc/glance/metadefs" >>"$LOGS/db-sync.log" 2>&1 \
        || die "glance-manage db_load_metadefs failed (log: $LOGS/db-sync.log)"
    touch "$STATE/.glance-metadefs"
}

start_horizon() {
    local django=(env PYTHONPATH="$HORIZON_DIR"
                  DJANGO_SETTINGS_MODULE=openstack_dashboard.settings "$VENV/bin/django-admin")
    load_glance_metadefs
    write_horizon_settings
    prepare_horizon_static "${django[@]}"
    # --insecure: Django serves the static files itself (no web server here)
    start horizon "${django[@]}" runserver "127.0.0.1:$HORIZON_PORT" --insecure --noreload
    wait_http horizon "http://127.0.0.1:$HORIZON_PORT/auth/login/" 60
}
