#!/usr/bin/env bash
# A throwaway single-node Elasticsearch for development and CI.
#
#   scripts/elasticsearch.sh start|stop|status|restart
#
# Why this shape:
# * The distribution is Maven Central's integ-test zip
#   (org.elasticsearch.distribution.integ-test-zip:elasticsearch:<version>:zip),
#   the only Elasticsearch build this project's machines can fetch. It carries
#   the server (dense_vector, int8_hnsw, kNN, collapse, aliases, terms and
#   date_histogram aggregations) but no bundled JDK and few modules: no _reindex,
#   no ingest pipelines, no ML. The backend uses none of those.
# * It needs Java 21+; Debian here has 17, so a newer JDK is looked for in
#   $ES_JAVA_HOME, $JAVA_HOME and the usual install folders.
# * Elasticsearch refuses to run as root. When started by root (CI is root) the
#   node runs as an unprivileged system user ($EYEPIC_ES_USER, default
#   eyepic-es, created on first use with useradd --system) that owns only
#   var/elasticsearch/. If that user cannot enter the checkout (a folder above it
#   lacks o+x, as /root has), the node's files go to
#   /var/tmp/eyepic-elasticsearch-<hash of the checkout path> instead.
# * Everything lives under var/elasticsearch/ (git-ignored): the unpacked
#   distribution, data, logs, pid file. Security is off, heap is small, the
#   node listens on 127.0.0.1 only.
#
# Environment: EYEPIC_ES_VERSION (9.2.0, the Python client's version),
# EYEPIC_ES_PORT (9200), EYEPIC_ES_HEAP (512m), EYEPIC_ES_USER (eyepic-es),
# EYEPIC_ES_HOME_DIR (var/elasticsearch), EYEPIC_ES_START_TIMEOUT (180 s).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION="${EYEPIC_ES_VERSION:-9.2.0}"
PORT="${EYEPIC_ES_PORT:-9200}"
HEAP="${EYEPIC_ES_HEAP:-512m}"
RUN_USER="${EYEPIC_ES_USER:-eyepic-es}"

others_can_enter() {  # every folder from $1 up to / lets "others" pass (x bit)
    local d="$1" mode
    while [[ -n "$d" && "$d" != / ]]; do
        mode="$(stat -c %a "$d" 2>/dev/null)" || return 1
        (( (8#$mode & 1) == 1 )) || return 1
        d="$(dirname "$d")"
    done
}

if [[ -n "${EYEPIC_ES_HOME_DIR:-}" ]]; then
    BASE="$EYEPIC_ES_HOME_DIR"
elif [[ "$(id -u)" == 0 ]] && ! others_can_enter "$ROOT"; then
    # Root's checkout sits where the unprivileged node user cannot reach (e.g. under
    # /root): keep the node's files in a per-checkout folder it can reach instead.
    BASE="/var/tmp/eyepic-elasticsearch-$(printf %s "$ROOT" | md5sum | cut -c1-10)"
else
    BASE="$ROOT/var/elasticsearch"
fi
START_TIMEOUT="${EYEPIC_ES_START_TIMEOUT:-180}"
ARTIFACT="org.elasticsearch.distribution.integ-test-zip:elasticsearch:${VERSION}:zip"
ES_HOME="$BASE/elasticsearch-$VERSION"
DATA="$BASE/data"
LOGS="$BASE/logs"
TMPD="$BASE/tmp"
PIDFILE="$BASE/elasticsearch.pid"
URL="http://127.0.0.1:${PORT}"

log() { echo "elasticsearch.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

java_major() {  # prints the major version of the java binary $1, or nothing
    "$1" -XshowSettings:properties -version 2>&1 \
        | sed -n 's/^ *java\.specification\.version = \([0-9]*\).*/\1/p' | head -n1
}

find_java_home() {
    local candidates=() c best="" best_major=0 major
    [[ -n "${ES_JAVA_HOME:-}" ]] && candidates+=("$ES_JAVA_HOME")
    [[ -n "${JAVA_HOME:-}" ]] && candidates+=("$JAVA_HOME")
    for c in /usr/lib/jvm/* /usr/java/* /opt/java/* /opt/*jdk* /opt/*/jdk* /usr/local/*jdk* \
             /usr/local/java/* "$HOME"/.sdkman/candidates/java/* "$HOME"/.jdks/*; do
        [[ -d "$c" ]] && candidates+=("$c")
    done
    if command -v java >/dev/null 2>&1; then
        candidates+=("$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")")
    fi
    for c in "${candidates[@]}"; do
        [[ -x "$c/bin/java" ]] || continue
        major="$(java_major "$c/bin/java")"
        [[ -n "$major" ]] || continue
        if (( major >= 21 && major > best_major )); then best="$c"; best_major="$major"; fi
    done
    [[ -n "$best" ]] || die "no Java 21+ found (Elasticsearch $VERSION needs it); set ES_JAVA_HOME"
    echo "$best"
}

fetch() {
    [[ -x "$ES_HOME/bin/elasticsearch" ]] && return 0
    command -v mvn >/dev/null 2>&1 || die "mvn not found: it fetches $ARTIFACT from Maven Central"
    mkdir -p "$BASE/dist"
    local zip="$BASE/dist/elasticsearch-$VERSION.zip"
    if [[ ! -s "$zip" ]]; then
        log "fetching $ARTIFACT with Maven"
        mvn -q -B org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy \
            -Dartifact="$ARTIFACT" -DoutputDirectory="$BASE/dist" -Dmdep.overWriteReleases=true \
            >"$BASE/dist/mvn.log" 2>&1 || { cat "$BASE/dist/mvn.log" >&2; die "mvn could not fetch $ARTIFACT"; }
    fi
    log "unpacking $(basename "$zip")"
    rm -rf "$BASE/unpack.tmp"
    mkdir -p "$BASE/unpack.tmp"
    if command -v unzip >/dev/null 2>&1; then
        unzip -q "$zip" -d "$BASE/unpack.tmp"
    else
        python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$zip" "$BASE/unpack.tmp"
        chmod +x "$BASE/unpack.tmp/elasticsearch-$VERSION"/bin/* \
            "$BASE/unpack.tmp/elasticsearch-$VERSION"/lib/platform/*/bin/* 2>/dev/null || true
    fi
    mv "$BASE/unpack.tmp/elasticsearch-$VERSION" "$ES_HOME"
    rmdir "$BASE/unpack.tmp"
}

ensure_user() {  # echoes the command prefix that runs as the node's user
    if [[ "$(id -u)" != 0 ]]; then
        return 0
    fi
    if ! id -u "$RUN_USER" >/dev/null 2>&1; then
        log "running as root: creating system user $RUN_USER for the node (Elasticsearch refuses root)"
        useradd --system --user-group --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin "$RUN_USER"
    fi
    chown -R "$RUN_USER:$RUN_USER" "$ES_HOME" "$DATA" "$LOGS" "$TMPD"
    chown "$RUN_USER:$RUN_USER" "$BASE"
    if ! runuser -u "$RUN_USER" -- test -r "$ES_HOME/bin/elasticsearch"; then
        die "user $RUN_USER cannot reach $ES_HOME (a parent folder is not world-traversable); set EYEPIC_ES_HOME_DIR to a folder it can reach"
    fi
}

pid_alive() {
    [[ -s "$PIDFILE" ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}

health() {  # prints the cluster status word, or nothing when nothing answers
    curl -fsS --max-time 5 "$URL/_cluster/health" 2>/dev/null \
        | sed -n 's/.*"status":"\([a-z]*\)".*/\1/p'
}

start() {
    if pid_alive; then
        log "already running (pid $(cat "$PIDFILE")) at $URL: $(health || true)"
        return 0
    fi
    if [[ -n "$(health)" ]]; then
        log "something else already answers at $URL ($(health)); using it"
        return 0
    fi
    fetch
    local java_home
    java_home="$(find_java_home)"
    mkdir -p "$DATA" "$LOGS" "$TMPD"
    rm -f "$PIDFILE"
    local prefix=()
    if [[ "$(id -u)" == 0 ]]; then
        ensure_user
        prefix=(runuser -u "$RUN_USER" --)
    fi
    log "starting Elasticsearch $VERSION on $URL (java: $java_home, heap $HEAP)"
    # -d daemonises once the node has started; -p writes the server's pid.
    (cd "$ES_HOME" && "${prefix[@]}" env -i PATH="/usr/bin:/bin" HOME="$BASE" \
        ES_JAVA_HOME="$java_home" ES_TMPDIR="$TMPD" ES_PATH_CONF="$ES_HOME/config" \
        ES_JAVA_OPTS="-Xms$HEAP -Xmx$HEAP" \
        "$ES_HOME/bin/elasticsearch" -d -p "$PIDFILE" \
        -E cluster.name=eyepic-dev \
        -E node.name=eyepic-dev-1 \
        -E discovery.type=single-node \
        -E network.host=127.0.0.1 \
        -E http.port="$PORT" \
        -E path.data="$DATA" \
        -E path.logs="$LOGS" \
        -E xpack.security.enabled=false \
        -E cluster.routing.allocation.disk.threshold_enabled=false \
        -E action.destructive_requires_name=false \
        -E indices.id_field_data.enabled=false \
        >"$LOGS/startup.out" 2>&1) || {
            cat "$LOGS/startup.out" >&2
            tail -n 40 "$LOGS/eyepic-dev.log" 2>/dev/null >&2 || true
            die "the node did not start"
        }
    local waited=0 status=""
    while (( waited < START_TIMEOUT )); do
        status="$(curl -fsS --max-time 10 "$URL/_cluster/health?wait_for_status=yellow&timeout=5s" 2>/dev/null \
            | sed -n 's/.*"status":"\([a-z]*\)".*/\1/p' || true)"
        if [[ "$status" == green || "$status" == yellow ]]; then
            log "up: $URL status $status, pid $(cat "$PIDFILE" 2>/dev/null || echo '?')"
            return 0
        fi
        if [[ -s "$PIDFILE" ]] && ! pid_alive; then break; fi
        sleep 2
        waited=$((waited + 2))
    done
    tail -n 40 "$LOGS/eyepic-dev.log" 2>/dev/null >&2 || true
    die "the node did not become healthy within ${START_TIMEOUT}s (logs: $LOGS)"
}

stop() {
    if ! pid_alive; then
        rm -f "$PIDFILE"
        log "not running"
        return 0
    fi
    local pid waited=0
    pid="$(cat "$PIDFILE")"
    log "stopping pid $pid"
    kill -TERM "$pid"
    while kill -0 "$pid" 2>/dev/null; do
        if (( waited >= 60 )); then
            log "still running after 60 s; killing"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 1
        waited=$((waited + 1))
    done
    rm -f "$PIDFILE"
    log "stopped"
}

status() {
    local s
    s="$(health || true)"
    if pid_alive; then
        echo "running: pid $(cat "$PIDFILE"), $URL, cluster status ${s:-not answering}"
    elif [[ -n "$s" ]]; then
        echo "not started by this script, but $URL answers: cluster status $s"
    else
        echo "stopped"
        return 3
    fi
    # GET / is not served by the integ-test distribution (no rest-root module): ask _nodes.
    local version
    version="$(curl -fsS --max-time 5 "$URL/_nodes/_local?filter_path=nodes.*.version" 2>/dev/null \
        | sed -n 's/.*"version":"\([^"]*\)".*/\1/p' || true)"
    echo "version: ${version:-unknown}"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    restart) stop; start ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status|restart" >&2; exit 2 ;;
esac
