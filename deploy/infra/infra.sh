#!/usr/bin/env bash
# Development / CI infrastructure: PostgreSQL, Redis, Kafka (and Chromium for browser tests).
#
#   bash deploy/infra/infra.sh up [--kafka] [--browser]   make the services reachable
#   bash deploy/infra/infra.sh down                        stop what this script started
#   bash deploy/infra/infra.sh status                      one line per service
#
# For each service, in this order:
#   1. already reachable at the configured address  -> use it, change nothing
#   2. a Docker engine answers (`docker info`)       -> `docker compose up -d <service>` (docker-compose.yml)
#   3. we can run it on this machine                 -> Debian packages (installed if missing, as root) / Maven jars
#   4. otherwise exit non-zero, saying what is missing and how to provide it.
#
# Addresses (environment, or KEY=VALUE lines in <repo>/.env; the environment wins):
#   DATABASE_URL  default postgresql://chatuser:chatpass@localhost:5432/chatdb
#   REDIS_URL     default redis://localhost:6379
#   KAFKA_BROKERS default localhost:19092   (first entry of a comma-separated list is used)
#
# Everything this script writes lives under <repo>/.data/ (git-ignored).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DATA="$REPO/.data"
STATE="$DATA/started"              # markers: which service this script started, and how
COMPOSE_FILE="$REPO/docker-compose.yml"
KAFKA_WAIT_SECS="${KAFKA_WAIT_SECS:-90}"
T0=$(date +%s%N)

log() { printf 'infra: %s\n' "$*"; }
warn() { printf 'infra: WARNING: %s\n' "$*" >&2; }
die() { printf 'infra: ERROR: %s\n' "$*" >&2; exit 1; }
elapsed() { local now; now=$(date +%s%N); printf '%d.%02ds' $(((now - T0) / 1000000000)) $(((now - T0) / 10000000 % 100)); }
have() { command -v "$1" >/dev/null 2>&1; }

# ---------------------------------------------------------------- configuration

load_dotenv() {
  local file="$REPO/.env" line key val
  [[ -f "$file" ]] || return 0
  while IFS= read -r line || [[ -n "$line" ]]; do
    line="${line%$'\r'}"
    [[ "$line" =~ ^[[:space:]]*(#|$) ]] && continue
    line="${line#"${line%%[![:space:]]*}"}"
    line="${line#export }"
    [[ "$line" == *=* ]] || continue
    key="${line%%=*}"; val="${line#*=}"
    key="${key%"${key##*[![:space:]]}"}"
    [[ "$key" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || continue
    if [[ "$val" =~ ^\"(.*)\"$ || "$val" =~ ^\'(.*)\'$ ]]; then val="${BASH_REMATCH[1]}"; fi
    [[ -n "${!key+x}" ]] && continue          # already set in the environment: keep it
    export "$key=$val"
  done <"$file"
}

urldecode() { local s="${1//%/\\x}"; printf '%b' "$s"; }

parse_config() {
  DATABASE_URL="${DATABASE_URL:-postgresql://chatuser:chatpass@localhost:5432/chatdb}"
  REDIS_URL="${REDIS_URL:-redis://localhost:6379}"
  # A configured KAFKA_BROKERS (environment or .env) means the app will use Kafka: `up` starts it.
  KAFKA_CONFIGURED="${KAFKA_BROKERS:+1}"
  KAFKA_BROKERS="${KAFKA_BROKERS:-localhost:19092}"
  export DATABASE_URL REDIS_URL KAFKA_BROKERS

  local re='^postgres(ql)?://([^:@/]+)(:([^@]*))?@(\[[^]]+\]|[^:/?]+)(:([0-9]+))?/([^?]+)'
  [[ "$DATABASE_URL" =~ $re ]] || die "cannot parse DATABASE_URL '$DATABASE_URL' (want postgresql://user:pass@host:port/db)"
  PG_USER="$(urldecode "${BASH_REMATCH[2]}")"
  PG_PASS="$(urldecode "${BASH_REMATCH[4]}")"
  PG_HOST="${BASH_REMATCH[5]}"; PG_HOST="${PG_HOST#[}"; PG_HOST="${PG_HOST%]}"
  PG_PORT="${BASH_REMATCH[7]:-5432}"
  PG_DB="$(urldecode "${BASH_REMATCH[8]}")"

  re='^rediss?://(([^:@/]*)(:([^@]*))?@)?(\[[^]]+\]|[^:/?]+)(:([0-9]+))?(/.*)?$'
  [[ "$REDIS_URL" =~ $re ]] || die "cannot parse REDIS_URL '$REDIS_URL' (want redis://[:pass@]host:port[/db])"
  REDIS_PASS="$(urldecode "${BASH_REMATCH[4]}")"
  REDIS_HOST="${BASH_REMATCH[5]}"; REDIS_HOST="${REDIS_HOST#[}"; REDIS_HOST="${REDIS_HOST%]}"
  REDIS_PORT="${BASH_REMATCH[7]:-6379}"

  local first="${KAFKA_BROKERS%%,*}"
  first="${first#*://}"
  [[ "$first" =~ ^(\[[^]]+\]|[^:]+):([0-9]+)$ ]] || die "cannot parse KAFKA_BROKERS '$KAFKA_BROKERS' (want host:port[,host:port])"
  KAFKA_HOST="${BASH_REMATCH[1]}"; KAFKA_HOST="${KAFKA_HOST#[}"; KAFKA_HOST="${KAFKA_HOST%]}"
  KAFKA_PORT="${BASH_REMATCH[2]}"
  KAFKA_CONTROLLER_PORT=$((KAFKA_PORT + 1))
}

is_local() { [[ "$1" == localhost || "$1" == 127.* || "$1" == ::1 || "$1" == 0.0.0.0 ]]; }
# address a locally started server listens on / advertises ("localhost" may resolve to ::1 first)
bind_addr() { if [[ "$1" == localhost || "$1" == 0.0.0.0 ]]; then echo 127.0.0.1; else echo "$1"; fi; }
hostport() { if [[ "$1" == *:* ]]; then echo "[$1]:$2"; else echo "$1:$2"; fi; }

# ---------------------------------------------------------------- probes (fast)

# shellcheck disable=SC2016  # $0/$1 expand in the inner bash
tcp_open() { timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null; }

pg_reachable() {
  if have pg_isready; then pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -t 2; else tcp_open "$PG_HOST" "$PG_PORT"; fi
}

# prints max_connections when DATABASE_URL can log in, fails otherwise
pg_login() {
  have psql || return 1
  PGCONNECT_TIMEOUT=3 psql "$DATABASE_URL" -X -At -c 'show max_connections' 2>/dev/null </dev/null
}

redis_reachable() {
  if have redis-cli; then
    [[ "$(timeout 3 redis-cli -u "$REDIS_URL" --no-auth-warning ping 2>/dev/null)" == PONG ]]
  else
    local reply
    # shellcheck disable=SC2016  # $0/$1 expand in the inner bash
    reply="$(timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"; printf "PING\r\n" >&3; IFS= read -r -t 1 l <&3; printf %s "$l"' \
      "$REDIS_HOST" "$REDIS_PORT" 2>/dev/null || true)"
    [[ "$reply" == +PONG* || "$reply" == -NOAUTH* ]]
  fi
}

# metadata answers with at least one broker
kafka_metadata() {
  local hp; hp="$(hostport "$KAFKA_HOST" "$KAFKA_PORT")"
  if have kcat; then
    timeout 10 kcat -b "$hp" -L -m 3 2>/dev/null | grep -qE '^ *[1-9][0-9]* brokers:'
  elif [[ -d "$REPO/node_modules/kafkajs" ]] && have node; then
    (cd "$REPO" && timeout 15 node -e '
      const { Kafka, logLevel } = require("kafkajs");
      const admin = new Kafka({ clientId: "infra-probe", brokers: [process.argv[1]], logLevel: logLevel.NOTHING,
        connectionTimeout: 2000, retry: { retries: 1 } }).admin();
      admin.connect().then(() => admin.listTopics()).then(() => admin.disconnect()).then(
        () => process.exit(0), () => process.exit(1));' "$hp") >/dev/null 2>&1
  else
    return 2
  fi
}

kafka_reachable() { tcp_open "$KAFKA_HOST" "$KAFKA_PORT" && kafka_metadata; }

chromium_path() {
  local c
  for c in chromium chromium-browser; do
    if have "$c"; then command -v "$c"; return 0; fi
  done
  return 1
}

# ---------------------------------------------------------------- how we can provide things

DOCKER_OK=""
docker_ok() {
  if [[ -z "$DOCKER_OK" ]]; then
    if have docker && timeout 20 docker info >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then DOCKER_OK=yes; else DOCKER_OK=no; fi
  fi
  [[ "$DOCKER_OK" == yes ]]
}

can_apt() { [[ "$(id -u)" -eq 0 && -f /etc/debian_version ]] && have apt-get; }

APT_UPDATED=""
apt_install() {   # apt_install pkg...  (apt-get update once per run, only when something is installed)
  can_apt || return 1
  wait_for_apt
  if [[ -z "$APT_UPDATED" ]]; then
    log "apt-get update"
    apt-get -o DPkg::Lock::Timeout=600 -qq update </dev/null >"$DATA/apt.log" 2>&1 || { tail -20 "$DATA/apt.log" >&2; die "apt-get update failed (log: $DATA/apt.log)"; }
    APT_UPDATED=yes
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q "$@" </dev/null >>"$DATA/apt.log" 2>&1 \
    || { tail -30 "$DATA/apt.log" >&2; die "apt-get install $* failed (log: $DATA/apt.log)"; }
}

wait_for_apt() {   # another apt/dpkg (e.g. a background install) holds the locks: wait for it
  have fuser || return 0
  local i=0 locks=(/var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock /var/cache/apt/archives/lock)
  while fuser "${locks[@]}" >/dev/null 2>&1; do
    ((i % 15 == 0)) && log "waiting for another apt/dpkg to finish..."
    ((++i > 900)) && die "apt/dpkg still locked after 15 min"
    sleep 1
  done
}

no_way() {   # no_way <what> <how to provide it>
  die "$1 is not reachable, no Docker engine answers (\`docker info\`), and it cannot be installed here (needs root on Debian). $2"
}

mark() { mkdir -p "$STATE"; printf '%s\n' "$2" >"$STATE/$1"; }

# ---------------------------------------------------------------- PostgreSQL

pg_version() { find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -V | tail -1; }

psql_admin() {   # run SQL from stdin as the postgres superuser on the local cluster
  (cd / && su postgres -s /bin/sh -c "psql -X -q -v ON_ERROR_STOP=1 -p $PG_PORT -d postgres")
}

sql_lit() { printf "'%s'" "${1//\'/\'\'}"; }
sql_ident() { printf '"%s"' "${1//\"/\"\"}"; }

pg_ensure_objects() {   # role + database + max_connections on the local Debian cluster
  local ver="$1" cluster="$2" maxc
  psql_admin <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = $(sql_lit "$PG_USER")) THEN
    CREATE ROLE $(sql_ident "$PG_USER") LOGIN CREATEDB PASSWORD $(sql_lit "$PG_PASS");
  ELSE
    ALTER ROLE $(sql_ident "$PG_USER") LOGIN CREATEDB PASSWORD $(sql_lit "$PG_PASS");
  END IF;
END \$\$;
SELECT format('CREATE DATABASE %I OWNER %I', $(sql_lit "$PG_DB"), $(sql_lit "$PG_USER"))
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = $(sql_lit "$PG_DB")) \gexec
SQL
  maxc="$(echo 'SHOW max_connections' | (cd / && su postgres -s /bin/sh -c "psql -X -At -p $PG_PORT -d postgres"))"
  if ((maxc < 300)); then
    log "postgres: max_connections $maxc -> 300 (restart)"
    echo 'ALTER SYSTEM SET max_connections = 300' | psql_admin
    pg_ctlcluster "$ver" "$cluster" restart
    pg_wait
  fi
}

pg_wait() {
  local i
  for ((i = 0; i < 60; i++)); do pg_reachable && return 0; sleep 0.5; done
  die "postgres did not accept connections on $PG_HOST:$PG_PORT within 30 s (see /var/log/postgresql/)"
}

pg_up() {
  if pg_reachable; then
    local maxc
    if maxc="$(pg_login)"; then
      local ver="" cluster=""
      [[ -f "$STATE/postgres" ]] && read -r ver cluster <"$STATE/postgres"
      if ((maxc < 300)) && [[ "$ver" =~ ^[0-9]+$ ]] && can_apt; then
        pg_ensure_objects "$ver" "$cluster"
      elif ((maxc < 300)); then
        warn "postgres max_connections is $maxc (< 300); big test suites may run out of connections"
      fi
      log "postgres: reachable at $PG_HOST:$PG_PORT (db $PG_DB as $PG_USER)"
      return 0
    fi
    # server answers but we cannot log in: create role/db if it is the local Debian cluster
    if is_local "$PG_HOST" && can_apt && have pg_lsclusters; then
      local line ver cluster
      line="$(pg_lsclusters -h 2>/dev/null | awk -v p="$PG_PORT" '$3 == p && $4 ~ /online/ {print $1, $2; exit}')"
      if [[ -n "$line" ]]; then
        read -r ver cluster <<<"$line"
        log "postgres: running ($ver/$cluster) but cannot log in as $PG_USER; creating role/database"
        [[ -n "$APT_UPDATED" ]] && mark postgres "$ver $cluster"   # we just installed it (apt started it)
        pg_ensure_objects "$ver" "$cluster"
        pg_login >/dev/null || die "postgres: still cannot log in with DATABASE_URL=$DATABASE_URL"
        log "postgres: ready at $PG_HOST:$PG_PORT"
        return 0
      fi
    fi
    die "postgres answers at $PG_HOST:$PG_PORT but DATABASE_URL cannot log in (is the psql client installed? right password?)"
  fi

  is_local "$PG_HOST" || die "postgres at $PG_HOST:$PG_PORT (DATABASE_URL) is not reachable and is not a local address this script could start"

  if docker_ok; then
    log "postgres: docker compose up -d postgres"
    docker compose -f "$COMPOSE_FILE" up -d postgres
    mark postgres docker
    pg_wait
    local i; for ((i = 0; i < 60; i++)); do ! have psql && break; pg_login >/dev/null && break; sleep 0.5; done
    log "postgres: ready at $PG_HOST:$PG_PORT (docker)"
    return 0
  fi

  can_apt || no_way "PostgreSQL ($PG_HOST:$PG_PORT)" \
    "Start PostgreSQL yourself and point DATABASE_URL at it (role needs CREATEDB), or install Docker and run 'docker compose up -d postgres'."

  if [[ -z "$(pg_version)" ]] || ! have pg_ctlcluster; then apt_install postgresql; fi
  local ver cluster line
  ver="$(pg_version)"
  [[ -n "$ver" ]] || die "postgres: no server under /usr/lib/postgresql after installing 'postgresql'"
  line="$(pg_lsclusters -h 2>/dev/null | awk -v v="$ver" -v p="$PG_PORT" '$1 == v && $3 == p {print $2; exit}')"
  if [[ -n "$line" ]]; then
    cluster="$line"
  elif ! pg_lsclusters -h 2>/dev/null | awk -v v="$ver" '$1 == v' | grep -q .; then
    cluster=main
    log "postgres: pg_createcluster $ver $cluster --port $PG_PORT"
    pg_createcluster "$ver" "$cluster" --port "$PG_PORT" >/dev/null
  else
    die "postgres: the PostgreSQL $ver clusters listen on other ports than $PG_PORT ($(pg_lsclusters -h | awk -v v="$ver" '$1 == v {printf "%s:%s ", $2, $3}')); set DATABASE_URL to one of them"
  fi
  log "postgres: pg_ctlcluster $ver $cluster start"
  pg_ctlcluster "$ver" "$cluster" start || pg_lsclusters -h | awk -v v="$ver" -v c="$cluster" '$1 == v && $2 == c' | grep -q online \
    || die "postgres: pg_ctlcluster $ver $cluster start failed (see /var/log/postgresql/postgresql-$ver-$cluster.log)"
  mark postgres "$ver $cluster"
  pg_wait
  pg_ensure_objects "$ver" "$cluster"
  pg_login >/dev/null || die "postgres: started, but cannot log in with DATABASE_URL=$DATABASE_URL"
  log "postgres: ready at $PG_HOST:$PG_PORT ($ver/$cluster)"
}

pg_down() {
  [[ -f "$STATE/postgres" ]] || { log "postgres: not started by this script, left alone"; return 0; }
  local how ver cluster
  read -r how cluster <"$STATE/postgres"
  if [[ "$how" == docker ]]; then rm -f "$STATE/postgres"; return 0; fi   # handled by compose down
  ver="$how"
  log "postgres: pg_ctlcluster $ver $cluster stop"
  pg_ctlcluster "$ver" "$cluster" stop 2>/dev/null || true
  rm -f "$STATE/postgres"
}

# ---------------------------------------------------------------- Redis

redis_up() {
  if redis_reachable; then
    local pol=""
    have redis-cli && pol="$(timeout 3 redis-cli -u "$REDIS_URL" --no-auth-warning config get maxmemory-policy 2>/dev/null | tail -1 || true)"
    [[ -z "$pol" || "$pol" == noeviction ]] || warn "redis maxmemory-policy is '$pol', BullMQ wants 'noeviction'"
    log "redis: reachable at $REDIS_HOST:$REDIS_PORT"
    return 0
  fi
  is_local "$REDIS_HOST" || die "redis at $REDIS_HOST:$REDIS_PORT (REDIS_URL) is not reachable and is not a local address this script could start"

  if docker_ok; then
    log "redis: docker compose up -d redis"
    docker compose -f "$COMPOSE_FILE" up -d redis
    mark redis docker
  else
    if ! have redis-server || ! have redis-cli; then
      can_apt || no_way "Redis ($REDIS_HOST:$REDIS_PORT)" \
        "Start redis-server (with --maxmemory-policy noeviction) and set REDIS_URL, or install Docker and run 'docker compose up -d redis'."
      apt_install redis-server
    fi
    local dir="$DATA/redis" binds
    mkdir -p "$dir"
    binds=("$(bind_addr "$REDIS_HOST")")
    [[ "$REDIS_HOST" == localhost ]] && binds+=("-::1")   # also ::1 if it exists ("-" = optional, Redis 7)
    local args=(--daemonize yes --port "$REDIS_PORT" --bind "${binds[@]}"
      --maxmemory-policy noeviction --save '' --appendonly no
      --dir "$dir" --logfile "$dir/redis.log" --pidfile "$dir/redis.pid")
    [[ -n "$REDIS_PASS" ]] && args+=(--requirepass "$REDIS_PASS")
    log "redis: redis-server on ${binds[*]} port $REDIS_PORT (dir .data/redis)"
    redis-server "${args[@]}" </dev/null || die "redis-server failed to start (log: $dir/redis.log)"
    mark redis "native $REDIS_PORT"
  fi
  local i
  for ((i = 0; i < 60; i++)); do redis_reachable && break; sleep 0.5; done
  redis_reachable || die "redis did not answer PING on $REDIS_HOST:$REDIS_PORT within 30 s (log: $DATA/redis/redis.log)"
  log "redis: ready at $REDIS_HOST:$REDIS_PORT"
}

redis_down() {
  [[ -f "$STATE/redis" ]] || { log "redis: not started by this script, left alone"; return 0; }
  local how; read -r how _ <"$STATE/redis"
  if [[ "$how" == native ]] && redis_reachable; then
    log "redis: redis-cli shutdown nosave"
    redis-cli -u "$REDIS_URL" --no-auth-warning shutdown nosave >/dev/null 2>&1 || true
  fi
  rm -f "$STATE/redis"
}

# ---------------------------------------------------------------- Kafka (Apache Kafka jars from Maven Central)

KDIR="$DATA/kafka"
KLIBS="$KDIR/libs"
KPOM="$REPO/deploy/kafka/pom.xml"

kafka_pid_alive() {
  local pid
  [[ -f "$KDIR/kafka.pid" ]] || return 1
  pid="$(cat "$KDIR/kafka.pid")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka'
}

kafka_fetch_libs() {
  local sum; sum="$(sha256sum "$KPOM" | cut -d' ' -f1)"
  if [[ -d "$KLIBS" ]] && compgen -G "$KLIBS/kafka_2.13-*.jar" >/dev/null && [[ "$(cat "$KLIBS/.pom.sha256" 2>/dev/null)" == "$sum" ]]; then
    return 0
  fi
  if ! have mvn; then
    can_apt || die "kafka: Maven (mvn) is needed to fetch the Kafka jars; install maven, or Docker ('docker compose up -d kafka')"
    apt_install maven
  fi
  local t; t=$(date +%s)
  log "kafka: fetching jars from Maven Central (deploy/kafka/pom.xml -> .data/kafka/libs)"
  rm -rf "$KLIBS"; mkdir -p "$KLIBS"
  mvn -q -B -f "$KPOM" dependency:copy-dependencies -DoutputDirectory="$KLIBS" </dev/null >"$KDIR/mvn.log" 2>&1 \
    || { tail -30 "$KDIR/mvn.log" >&2; rm -rf "$KLIBS"; die "kafka: mvn dependency:copy-dependencies failed (log: $KDIR/mvn.log)"; }
  echo "$sum" >"$KLIBS/.pom.sha256"
  log "kafka: $(find "$KLIBS" -name '*.jar' | wc -l) jars in $(($(date +%s) - t)) s ($(basename "$(ls "$KLIBS"/kafka_2.13-*.jar)" .jar))"
}

kafka_write_config() {
  local h adv
  h="$(bind_addr "$KAFKA_HOST")"; adv="$h"
  mkdir -p "$KDIR/data"
  cat >"$KDIR/server.properties" <<EOF
# generated by deploy/infra/infra.sh -- single combined KRaft node for development and tests
process.roles=broker,controller
node.id=1
listeners=PLAINTEXT://$(hostport "$h" "$KAFKA_PORT"),CONTROLLER://$(hostport "$h" "$KAFKA_CONTROLLER_PORT")
advertised.listeners=PLAINTEXT://$(hostport "$adv" "$KAFKA_PORT")
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.quorum.voters=1@$(hostport "$h" "$KAFKA_CONTROLLER_PORT")
log.dirs=$KDIR/data
num.partitions=3
auto.create.topics.enable=true
delete.topic.enable=true
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=24
EOF
  cat >"$KDIR/log4j2.properties" <<'EOF'
# generated by deploy/infra/infra.sh -- broker logs go to stdout, which infra.sh sends to .data/kafka/kafka.log
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.controller.name = org.apache.kafka.controller
logger.controller.level = INFO
EOF
}

kafka_java() { java -cp "$KLIBS/*" "$@"; }

kafka_wait() {   # kafka_wait <pid>
  local pid="$1" i t; t=$(date +%s)
  for ((i = 0; i < KAFKA_WAIT_SECS * 2; i++)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -40 "$KDIR/kafka.log" >&2 || true
      rm -f "$KDIR/kafka.pid"
      die "kafka: broker exited during start-up (log: $KDIR/kafka.log)"
    fi
    if tcp_open "$KAFKA_HOST" "$KAFKA_PORT" && kafka_metadata; then
      log "kafka: ready at $KAFKA_HOST:$KAFKA_PORT after $(($(date +%s) - t)) s (pid $pid)"
      return 0
    fi
    sleep 0.5
  done
  tail -40 "$KDIR/kafka.log" >&2 || true
  die "kafka: broker (pid $pid) not ready on $KAFKA_HOST:$KAFKA_PORT after ${KAFKA_WAIT_SECS} s (log: $KDIR/kafka.log)"
}

kafka_up() {
  if tcp_open "$KAFKA_HOST" "$KAFKA_PORT"; then
    local rc=0; kafka_metadata || rc=$?
    if ((rc == 0)); then log "kafka: reachable at $KAFKA_HOST:$KAFKA_PORT"; return 0; fi
    if kafka_pid_alive; then
      log "kafka: our broker (pid $(cat "$KDIR/kafka.pid")) is still starting; waiting"
      kafka_wait "$(cat "$KDIR/kafka.pid")"; return 0
    fi
    if ((rc == 2)); then   # no client to ask for metadata
      if can_apt; then apt_install kcat; kafka_metadata && { log "kafka: reachable at $KAFKA_HOST:$KAFKA_PORT"; return 0; }
      else log "kafka: port $KAFKA_PORT open (no kcat/kafkajs to check metadata), assuming reachable"; return 0; fi
    fi
    die "kafka: something listens on $KAFKA_HOST:$KAFKA_PORT but does not answer Kafka metadata requests"
  fi
  is_local "$KAFKA_HOST" || die "kafka at $KAFKA_HOST:$KAFKA_PORT (KAFKA_BROKERS) is not reachable and is not a local address this script could start"

  if docker_ok; then
    log "kafka: docker compose up -d kafka"
    docker compose -f "$COMPOSE_FILE" up -d kafka
    mark kafka docker
    local i
    for ((i = 0; i < KAFKA_WAIT_SECS * 2; i++)); do
      if tcp_open "$KAFKA_HOST" "$KAFKA_PORT"; then
        local rc=0; kafka_metadata || rc=$?
        ((rc == 0 || rc == 2)) && { log "kafka: ready at $KAFKA_HOST:$KAFKA_PORT (docker)"; return 0; }
      fi
      sleep 0.5
    done
    docker compose -f "$COMPOSE_FILE" logs --tail 40 kafka >&2 || true
    die "kafka: container not ready on $KAFKA_HOST:$KAFKA_PORT after ${KAFKA_WAIT_SECS} s"
  fi

  # native: Java + jars from Maven Central (cmd_up already installed missing Debian packages when it could)
  if ! have java || { ! have mvn && ! compgen -G "$KLIBS/kafka_2.13-*.jar" >/dev/null; }; then
    no_way "Kafka ($KAFKA_HOST:$KAFKA_PORT)" \
      "Install Java 17+ and Maven (this script then runs Apache Kafka from its Maven Central jars), or run a broker yourself and set KAFKA_BROKERS, or install Docker and run 'docker compose up -d kafka'."
  fi
  if ! have kcat && ! [[ -d "$REPO/node_modules/kafkajs" ]]; then
    die "kafka: neither kcat nor node_modules/kafkajs is available to check that the broker answers; install kcat or run 'npm ci'"
  fi
  mkdir -p "$KDIR"
  kafka_fetch_libs
  kafka_write_config
  if [[ ! -f "$KDIR/data/meta.properties" ]]; then
    local cid
    cid="$(kafka_java kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)"
    [[ "$cid" =~ ^[A-Za-z0-9_-]{22}$ ]] || die "kafka: StorageTool random-uuid failed ('$cid')"
    echo "$cid" >"$KDIR/cluster.id"
    log "kafka: formatting storage (cluster id $cid)"
    kafka_java kafka.tools.StorageTool format -t "$cid" -c "$KDIR/server.properties" >"$KDIR/format.log" 2>&1 \
      || { cat "$KDIR/format.log" >&2; die "kafka: storage format failed"; }
  fi
  if kafka_pid_alive; then
    log "kafka: our broker (pid $(cat "$KDIR/kafka.pid")) is running but not answering yet; waiting"
    kafka_wait "$(cat "$KDIR/kafka.pid")"; return 0
  fi
  [[ -f "$KDIR/kafka.log" ]] && mv -f "$KDIR/kafka.log" "$KDIR/kafka.log.1"
  log "kafka: starting broker $(basename "$(ls "$KLIBS"/kafka_2.13-*.jar)" .jar) on $(bind_addr "$KAFKA_HOST"):$KAFKA_PORT (controller :$KAFKA_CONTROLLER_PORT)"
  (
    cd "$KDIR"
    exec setsid nohup java -Xms256m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true \
      -Dlog4j2.configurationFile="$KDIR/log4j2.properties" \
      -cp "$KLIBS/*" kafka.Kafka "$KDIR/server.properties" </dev/null >"$KDIR/kafka.log" 2>&1
  ) &
  local pid=$!
  echo "$pid" >"$KDIR/kafka.pid"
  mark kafka "native $pid"
  kafka_wait "$pid"
}

kafka_down() {
  local how="" pid
  [[ -f "$STATE/kafka" ]] && read -r how _ <"$STATE/kafka"
  if kafka_pid_alive; then
    pid="$(cat "$KDIR/kafka.pid")"
    log "kafka: stopping broker (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    local i
    for ((i = 0; i < 60; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then warn "kafka: pid $pid still alive after 30 s, killing"; kill -KILL "$pid" 2>/dev/null || true; fi
  elif [[ "$how" != docker ]]; then
    log "kafka: not started by this script, left alone"
  fi
  rm -f "$KDIR/kafka.pid" "$STATE/kafka"
}

# ---------------------------------------------------------------- Chromium

browser_up() {
  local p
  if p="$(chromium_path)"; then log "chromium: installed ($p)"; return 0; fi
  can_apt || die "chromium is not installed and cannot be installed here (needs root on Debian); install Chromium and put it on PATH"
  apt_install chromium
  p="$(chromium_path)" || die "chromium: still not on PATH after apt-get install chromium"
  log "chromium: installed ($p)"
}

# ---------------------------------------------------------------- commands

cmd_up() {
  local want_kafka="" want_browser=""
  for a in "$@"; do
    case "$a" in
      --kafka) want_kafka=1 ;;
      --browser) want_browser=1 ;;
      *) die "unknown option '$a' (usage: infra.sh up [--kafka] [--browser])" ;;
    esac
  done
  [[ -z "$KAFKA_CONFIGURED" ]] || want_kafka=1
  mkdir -p "$DATA"

  # Fast path: everything already answers -> no installs, no docker, nothing written.
  local pg_ok="" redis_ok="" kafka_ok="" browser_ok=""
  pg_reachable && pg_login >/dev/null && pg_ok=1
  redis_reachable && redis_ok=1
  [[ -z "$want_kafka" ]] || { kafka_reachable && kafka_ok=1; } || true
  [[ -z "$want_browser" ]] || { chromium_path >/dev/null && browser_ok=1; } || true

  # Install all missing Debian packages in one apt run (only when Docker will not provide the service).
  if can_apt; then
    local pkgs=()
    if [[ -z "$pg_ok" ]] && ! pg_reachable && is_local "$PG_HOST" && { [[ -z "$(pg_version)" ]] || ! have pg_ctlcluster; } && ! docker_ok; then pkgs+=(postgresql); fi
    if [[ -z "$redis_ok" ]] && is_local "$REDIS_HOST" && { ! have redis-server || ! have redis-cli; } && ! docker_ok; then pkgs+=(redis-server); fi
    if [[ -n "$want_browser" && -z "$browser_ok" ]]; then pkgs+=(chromium); fi
    if [[ -n "$want_kafka" && -z "$kafka_ok" ]] && is_local "$KAFKA_HOST" && ! docker_ok; then
      have java || pkgs+=(openjdk-17-jre-headless)
      have mvn || compgen -G "$KLIBS/kafka_2.13-*.jar" >/dev/null || pkgs+=(maven)
      have kcat || pkgs+=(kcat)
    fi
    ((${#pkgs[@]} == 0)) || apt_install "${pkgs[@]}"
  fi

  pg_up
  redis_up
  [[ -z "$want_kafka" ]] || kafka_up
  [[ -z "$want_browser" ]] || browser_up
  log "up: done in $(elapsed)"
}

cmd_down() {
  mkdir -p "$DATA"
  kafka_down
  redis_down
  pg_down
  if have docker && [[ -f "$COMPOSE_FILE" ]] && docker_ok && [[ -n "$(docker compose -f "$COMPOSE_FILE" ps -q 2>/dev/null)" ]]; then
    log "docker compose down"
    docker compose -f "$COMPOSE_FILE" down
  fi
  log "down: done in $(elapsed)"
}

cmd_status() {
  local bad=0 p
  if pg_reachable; then
    if pg_login >/dev/null; then log "postgres  $PG_HOST:$PG_PORT  reachable (login as $PG_USER to $PG_DB ok)"
    else log "postgres  $PG_HOST:$PG_PORT  reachable, but DATABASE_URL cannot log in"; bad=1; fi
  else log "postgres  $PG_HOST:$PG_PORT  NOT reachable"; bad=1; fi
  if redis_reachable; then log "redis     $REDIS_HOST:$REDIS_PORT  reachable"; else log "redis     $REDIS_HOST:$REDIS_PORT  NOT reachable"; bad=1; fi
  if kafka_reachable; then log "kafka     $KAFKA_HOST:$KAFKA_PORT  reachable"; else log "kafka     $KAFKA_HOST:$KAFKA_PORT  NOT reachable"; fi
  if p="$(chromium_path)"; then log "chromium  $p"; else log "chromium  not installed"; fi
  return "$bad"
}

main() {
  local cmd="${1:-}"; shift || true
  load_dotenv
  parse_config
  case "$cmd" in
    up) cmd_up "$@" ;;
    down) cmd_down ;;
    status) cmd_status ;;
    *) echo "usage: infra.sh up [--kafka] [--browser] | down | status" >&2; exit 2 ;;
  esac
}

main "$@"
