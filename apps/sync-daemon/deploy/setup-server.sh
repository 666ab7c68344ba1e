#!/usr/bin/env bash
# Turns a Debian or Ubuntu mini PC into the clinic's failover server: PostgreSQL with
# least-privilege scram-sha-256 logins reachable only from the clinic subnet and only over TLS (a
# clinic CA and a server certificate are made when none is given: make-clinic-tls.sh), the host
# firewall letting only that subnet reach PostgreSQL's port (postgresql-firewall.sh), a nightly
# pg_dump with rotation and a restore check, the sync daemon as a hardened systemd service, and a
# config for the PCs that pins the clinic's CA (verify-full).
#
# The daemon is the centrovision-sync Debian package's (/usr/bin/centrovision-sync, its unit in
# /lib/systemd/system), which installs this script as centrovision-setup-server; --from-checkout
# runs it from a checkout of the repository instead (development).
#
# Idempotent: run it again after changing an option. It never overwrites an existing config or
# secret. --dry-run prints every step and changes nothing. Without systemd (a container), PostgreSQL
# is started with pg_ctlcluster and the units are written but not enabled: the script says so. No secret is ever a process argument
# or printed: they live in files under /etc/centrovision/secrets, and the logins' passwords reach
# PostgreSQL as SCRAM-SHA-256 verifiers on psql's stdin (set-role-password.sh).
#
#   sudo centrovision-setup-server --subnet 192.168.1.0/24 --supabase-url https://<ref>.supabase.co \
#        --anon-key-file /root/anon_key --clinic-name "Clínica Roma" --branch "Roma Norte" \
#        --service-role-key-file /root/service_role_key [--pc-branch-id UUID] \
#        [--cert server.crt --key server.key --ca ca.pem]
#
# The service-role key is used once, by `centrovision-sync node create` (the clinic server's own
# credential in the cloud), and never copied to this server.
set -euo pipefail

# Through the package's /usr/sbin/centrovision-setup-server link: the scripts it runs are beside the target.
SCRIPT_DIR=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/../../.." && pwd)
PACKAGE_BIN=/usr/bin/centrovision-sync

DRY_RUN=0
SUBNET=""
SUPABASE_URL=""
SERVICE_ROLE_KEY_FILE=""
ANON_KEY_FILE=""
CLINIC_NAME=""
CERT=""
KEY=""
CA_FILE=""
PC_BRANCH_ID=""
DB_NAME="centrovision"
CLUSTER="main"
PORT="5432"
ROOT=""
FROM_CHECKOUT=0
NODE_NAME="clinic-server"
BRANCH_ARGS=()
PG_VERSION=""
KEEP_DAYS="14"
FIREWALL="auto"
SERVER_ADDRESS=""
SERVICE_USER="centrovision-sync"
DAEMON_LOGIN="cv_sync_daemon"
PC_LOGIN="centrovision_pc"
ADMIN_LOGIN="centrovision_admin"

usage() {
  cat <<USAGE
Usage: ${0##*/} --subnet CIDR --supabase-url URL [options]

Required:
  --subnet CIDR                 clinic LAN allowed to reach PostgreSQL, e.g. 192.168.1.0/24
  --supabase-url URL            the project's https:// URL
  --anon-key-file FILE          the project's anon (public) key, copied to /etc/centrovision/anon_key
  --clinic-name NAME            the clinic's name in the cloud (unique there), e.g. "Clínica Roma"
  --service-role-key-file FILE  the service-role key, for \`centrovision-sync node create\` only:
                                never copied; needed until /etc/centrovision/sync.toml has a node_email
  --branch NAME                 a branch this server holds, by name or id (repeat for each); or
  --all-branches                this server holds every branch (one clinic server for all)

Options:
  --cert FILE --key FILE --ca FILE
                                PostgreSQL's TLS certificate (naming --server-address), its key, and
                                the CA that signed it (given to the PCs). Default: a clinic CA and a
                                certificate made in /etc/centrovision/tls (make-clinic-tls.sh). Either way
                                the PCs connect only over TLS (hostssl) and verify it (verify-full)
  --pc-branch-id UUID           the branch the PCs show by default (branch_id in their config);
                                without it the config has a line to fill in
  --server-address ADDR         IPv4 address the PCs use for this server, named by its certificate
                                (default: first IP of this host; give it a fixed address)
  --db NAME                     database name (default $DB_NAME)
  --node-name NAME              this node's name in sync (default $NODE_NAME)
  --pg-version N                PostgreSQL major version (default: the newest installed, as the
                                package's dependency on postgresql installs it; else 16), installed
                                with apt-get when missing
  --cluster NAME --port N       the PostgreSQL cluster (default $CLUSTER on $PORT), created when missing
  --keep-days N                 days of nightly backups kept (default $KEEP_DAYS)
  --firewall auto|ufw|firewalld|nftables|none
                                the host firewall that lets only --subnet reach PostgreSQL's port
                                (default auto: an active ufw, else a running firewalld, else nftables
                                when nft is installed, else none; postgresql-firewall.sh)
  --from-checkout               run the daemon from the checkout this script is in (after its
                                \`npm install\`) instead of the centrovision-sync package's
  --root DIR                    write every file of this script under DIR instead of / (a staging
                                tree or a test), except PostgreSQL's own in /etc/postgresql; the
                                systemd units are written there and not enabled, and the host
                                firewall is left alone
  --dry-run                     print what would be done, change nothing
  -h, --help                    this help
USAGE
}

die() {
  echo "setup-server.sh: $*" >&2
  exit 2
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --subnet) SUBNET=${2:-}; shift 2 ;;
    --supabase-url) SUPABASE_URL=${2:-}; shift 2 ;;
    --service-role-key-file) SERVICE_ROLE_KEY_FILE=${2:-}; shift 2 ;;
    --anon-key-file) ANON_KEY_FILE=${2:-}; shift 2 ;;
    --clinic-name) CLINIC_NAME=${2:-}; shift 2 ;;
    --branch) BRANCH_ARGS+=(--branch "${2:-}"); shift 2 ;;
    --all-branches) BRANCH_ARGS+=(--all-branches); shift ;;
    --cert) CERT=${2:-}; shift 2 ;;
    --key) KEY=${2:-}; shift 2 ;;
    --ca) CA_FILE=${2:-}; shift 2 ;;
    --pc-branch-id) PC_BRANCH_ID=${2:-}; shift 2 ;;
    --server-address) SERVER_ADDRESS=${2:-}; shift 2 ;;
    --db) DB_NAME=${2:-}; shift 2 ;;
    --node-name) NODE_NAME=${2:-}; shift 2 ;;
    --pg-version) PG_VERSION=${2:-}; shift 2 ;;
    --cluster) CLUSTER=${2:-}; shift 2 ;;
    --port) PORT=${2:-}; shift 2 ;;
    --root) ROOT=${2:-}; shift 2 ;;
    --from-checkout) FROM_CHECKOUT=1; shift ;;
    --keep-days) KEEP_DAYS=${2:-}; shift 2 ;;
    --firewall) FIREWALL=${2:-}; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
done
CONFIG_DIR="$ROOT/etc/centrovision"
BACKUP_DIR="$ROOT/var/backups/centrovision"
# The daemon: the package's, or a link to the checkout's bin (--from-checkout).
BIN=$PACKAGE_BIN
README=/usr/share/doc/centrovision-sync/README.md
if [[ $FROM_CHECKOUT -eq 1 ]]; then
  BIN="$ROOT/usr/local/bin/centrovision-sync"
  README="$REPO_DIR/apps/sync-daemon/README.md"
fi
BACKUP_BIN="$ROOT/usr/local/sbin/centrovision-backup"
UNIT_DIR="$ROOT/etc/systemd/system"

# Without --pg-version: the newest PostgreSQL installed (the package's dependency pulled it in), else 16.
if [[ -z $PG_VERSION ]]; then
  PG_VERSION=16
  for server in /usr/lib/postgresql/*/bin/postgres; do
    if [[ -x $server ]]; then PG_VERSION=$(basename "$(dirname "$(dirname "$server")")"); fi
  done
fi

# --- validate every option before touching anything ------------------------------------------
problems=()
[[ $SUBNET =~ ^([0-9]{1,3}\.){3}[0-9]{1,3}/([0-9]|[12][0-9]|3[0-2])$ ]] ||
  problems+=("--subnet must be an IPv4 CIDR such as 192.168.1.0/24")
# Plain http only to a stack on this machine (a local Supabase): never across a network.
[[ $SUPABASE_URL =~ ^https://[A-Za-z0-9.-]+(:[0-9]+)?/?$ ||
  $SUPABASE_URL =~ ^http://(127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}|localhost)(:[0-9]+)?/?$ ]] ||
  problems+=("--supabase-url must be the project's https:// URL")
[[ $DB_NAME =~ ^[a-z_][a-z0-9_]{0,62}$ ]] || problems+=("--db must be a lower-case identifier")
[[ $NODE_NAME =~ ^[a-z0-9][a-z0-9_-]{0,62}$ ]] || problems+=("--node-name must be a-z, 0-9, - and _")
[[ $PG_VERSION =~ ^[0-9]{2}$ ]] || problems+=("--pg-version must be a major version such as 16")
[[ $CLUSTER =~ ^[a-z0-9][a-z0-9_-]{0,30}$ ]] || problems+=("--cluster must be a-z, 0-9, - and _, such as main")
[[ $PORT =~ ^[1-9][0-9]{0,4}$ && $PORT -le 65535 ]] || problems+=("--port must be a TCP port such as 5432")
[[ -z $ROOT || $ROOT == /* ]] || problems+=("--root must be an absolute path")
if [[ $FROM_CHECKOUT -eq 1 ]]; then
  if [[ ! -f $REPO_DIR/apps/sync-daemon/package.json ]]; then
    problems+=("--from-checkout: $SCRIPT_DIR is not in a checkout of the repository (it is the package's): leave the option out")
  elif [[ ! -d $REPO_DIR/node_modules ]]; then
    problems+=("--from-checkout: $REPO_DIR has no node_modules (run npm install there first)")
  fi
elif [[ $DRY_RUN -eq 0 && ! -x $PACKAGE_BIN ]]; then
  problems+=("the centrovision-sync package is not installed ($PACKAGE_BIN is missing): apt-get install ./centrovision-sync_<version>_<arch>.deb (npm run package -w centrovision-sync builds it), or add --from-checkout to run the daemon from this checkout")
fi
[[ $FIREWALL =~ ^(auto|ufw|firewalld|nftables|none)$ ]] ||
  problems+=("--firewall must be auto, ufw, firewalld, nftables or none")
[[ $KEEP_DAYS =~ ^[0-9]+$ && $KEEP_DAYS -ge 1 ]] || problems+=("--keep-days must be a positive number")
if [[ -z $SERVER_ADDRESS ]]; then
  SERVER_ADDRESS=$(hostname -I 2>/dev/null | awk '{print $1}')
  SERVER_ADDRESS=${SERVER_ADDRESS:-127.0.0.1}
fi
octet='(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])'
[[ $SERVER_ADDRESS =~ ^$octet\.$octet\.$octet\.$octet$ ]] ||
  problems+=("--server-address must be this server's IPv4 address on the clinic LAN, such as 192.168.1.10 (got '$SERVER_ADDRESS')")
command -v openssl >/dev/null 2>&1 || problems+=("openssl is needed for TLS: apt-get install openssl")
if [[ -n $CERT || -n $KEY || -n $CA_FILE ]]; then
  [[ -n $CERT && -n $KEY && -n $CA_FILE ]] ||
    problems+=("--cert, --key and --ca go together (--ca: the CA that signed --cert, which the PCs verify it with)")
  [[ -z $CERT || -r $CERT ]] || problems+=("--cert: cannot read $CERT")
  [[ -z $KEY || -r $KEY ]] || problems+=("--key: cannot read $KEY")
  [[ -z $CA_FILE || -r $CA_FILE ]] || problems+=("--ca: cannot read $CA_FILE")
  if [[ -r $CERT && -r $CA_FILE ]] && command -v openssl >/dev/null 2>&1; then
    # What the PCs will check (verify-full): the chain to --ca, and the address they connect to.
    openssl verify -CAfile "$CA_FILE" -untrusted "$CERT" "$CERT" >/dev/null 2>&1 ||
      problems+=("--cert: $CERT is not signed by --ca $CA_FILE (or is not a PEM certificate)")
    [[ $(openssl x509 -in "$CERT" -noout -checkip "$SERVER_ADDRESS" 2>/dev/null) == *" does match "* ]] ||
      problems+=("--cert: $CERT does not name $SERVER_ADDRESS (subjectAltName IP), the address the PCs connect to")
  fi
fi
[[ -z $PC_BRANCH_ID || $PC_BRANCH_ID =~ ^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$ ]] ||
  problems+=("--pc-branch-id must be the branch's id (a UUID)")
ANON_KEY=""
if [[ -n $ANON_KEY_FILE && -r $ANON_KEY_FILE ]]; then
  # Public (it goes into the PCs' config as text), but checked: it is pasted into TOML.
  ANON_KEY=$(tr -d '[:space:]' <"$ANON_KEY_FILE")
  [[ $ANON_KEY =~ ^[A-Za-z0-9._-]+$ ]] ||
    problems+=("--anon-key-file: $ANON_KEY_FILE does not hold an anon key (one line of letters, digits, '.', '_' and '-')")
else
  problems+=("--anon-key-file: cannot read '$ANON_KEY_FILE' (the project's anon key: dashboard, Settings, API)")
fi
[[ $CLINIC_NAME =~ [^[:space:]] ]] || problems+=("--clinic-name is required: the clinic's name in the cloud")
if ! grep -qs '^node_email' "$CONFIG_DIR/sync.toml"; then
  [[ ${#BRANCH_ARGS[@]} -gt 0 ]] ||
    problems+=("--branch is required (repeat it for each branch this server holds), or --all-branches")
  [[ -n $SERVICE_ROLE_KEY_FILE && -r $SERVICE_ROLE_KEY_FILE ]] ||
    problems+=("--service-role-key-file: cannot read '$SERVICE_ROLE_KEY_FILE' (needed once, to create this server's node credential)")
fi
if [[ ${#problems[@]} -gt 0 ]]; then
  for problem in "${problems[@]}"; do echo "setup-server.sh: $problem" >&2; done
  echo "Run with --help for the options." >&2
  exit 2
fi
if [[ $DRY_RUN -eq 0 && $(id -u) -ne 0 ]]; then
  die "run as root (sudo), or add --dry-run to see what it would do"
fi

PG_ETC="/etc/postgresql/$PG_VERSION/$CLUSTER"
# Every psql (here, in set-role-password.sh and in the backup) reaches this cluster.
export PGPORT=$PORT
# systemd runs the services when it is the init system (sd_booted); else (a container) PostgreSQL
# is run with pg_ctlcluster and the units are written but not enabled. --root never enables them.
SYSTEMD=0
[[ -n $ROOT || ! -d /run/systemd/system ]] || SYSTEMD=1
TLS_DIR="$CONFIG_DIR/tls"
# The CA the PCs pin: the clinic's own (made below), or the one that signed --cert.
CA_SOURCE="$TLS_DIR/clinic-ca.pem"
if [[ -n $CERT ]]; then
  CA_SOURCE=$CA_FILE
else
  CERT="$TLS_DIR/server.crt"
  KEY="$TLS_DIR/server.key"
fi

# --- helpers: every change goes through run / write_new / write_managed -----------------------
step() { echo; echo "== $*"; }

run() {
  if [[ $DRY_RUN -eq 1 ]]; then
    echo "would run: $*"
  else
    echo "+ $*"
    "$@"
  fi
}

# The cluster's service: systemd's unit, or pg_ctlcluster without systemd.
pg_service() {
  local action=$1
  if [[ $SYSTEMD -eq 1 ]]; then
    run systemctl "$action" "postgresql@$PG_VERSION-$CLUSTER"
  elif [[ $action == start ]]; then
    if [[ $DRY_RUN -eq 1 ]] || ! pg_ctlcluster "$PG_VERSION" "$CLUSTER" status >/dev/null 2>&1; then
      run pg_ctlcluster "$PG_VERSION" "$CLUSTER" start
    fi
  else
    run pg_ctlcluster "$PG_VERSION" "$CLUSTER" "$action"
  fi
}

# SQL on stdin as the postgres superuser over the local socket (peer authentication). On stdin,
# because psql substitutes its variables (-v name=value, :'name') there and not in -c.
psql_admin() {
  run runuser -u postgres -- psql -v ON_ERROR_STOP=1 -X -q "$@"
}

# write_new PATH MODE OWNER [show]: writes stdin to PATH unless PATH exists (configs and secrets).
# With `show` (never for a secret), --dry-run prints the content too.
write_new() {
  local path=$1 mode=$2 owner=$3 show=${4:-} content
  content=$(cat)
  if [[ -e $path ]]; then
    echo "keep existing $path (never overwritten)"
    return
  fi
  if [[ $DRY_RUN -eq 1 ]]; then
    echo "would write $path (mode $mode, owner $owner)$([[ $show == show ]] && echo :)"
    [[ $show != show ]] || printf '%s\n' "$content" | sed 's/^/    /'
    return
  fi
  install -m "$mode" -o "${owner%%:*}" -g "${owner##*:}" /dev/null "$path"
  printf '%s\n' "$content" >"$path"
  echo "wrote $path"
}

# write_managed PATH MODE: writes stdin to PATH, replacing what this script wrote before.
write_managed() {
  local path=$1 mode=$2 content
  content=$(cat)
  if [[ -f $path ]] && [[ $(cat "$path") == "$content" ]]; then
    echo "unchanged $path"
    return
  fi
  if [[ $DRY_RUN -eq 1 ]]; then
    echo "would write $path (mode $mode):"
    printf '%s\n' "$content" | sed 's/^/    /'
    return
  fi
  install -m "$mode" /dev/null "$path"
  printf '%s\n' "$content" >"$path"
  echo "wrote $path"
}

new_secret() { head -c 24 /dev/urandom | base64 | tr -d '/+=\n'; }

# The daemon runs on Node.js, and the logins' passwords are hashed with it (set-role-password.sh).
NODE_MAJOR=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [[ $NODE_MAJOR -lt 20 ]]; then
  echo "Node.js 20 or newer is needed (found: ${NODE_MAJOR}); install it, e.g. from https://github.com/nodesource/distributions" >&2
  [[ $DRY_RUN -eq 1 ]] || exit 1
fi

# --- 1. PostgreSQL ----------------------------------------------------------------------------
step "PostgreSQL $PG_VERSION"
if command -v "/usr/lib/postgresql/$PG_VERSION/bin/postgres" >/dev/null 2>&1; then
  echo "PostgreSQL $PG_VERSION is installed"
else
  run apt-get update
  # Waits for another apt or dpkg (unattended-upgrades) instead of failing at once.
  run env DEBIAN_FRONTEND=noninteractive apt-get install -y -o DPkg::Lock::Timeout=300 \
    "postgresql-$PG_VERSION" postgresql-client-common
fi
if [[ -d $PG_ETC ]]; then
  echo "cluster $PG_VERSION/$CLUSTER exists"
else
  run pg_createcluster "$PG_VERSION" "$CLUSTER" --port "$PORT"
fi
write_managed "$PG_ETC/conf.d/centrovision.conf" 0644 <<CONF
# Managed by centrovision setup-server.sh
listen_addresses = '*'
port = $PORT
password_encryption = 'scram-sha-256'
# An idle open transaction holds the sync horizon back.
idle_in_transaction_session_timeout = '5min'
# TLS always: the PCs reach this server only with hostssl (pg_hba below).
ssl = on
ssl_cert_file = '$PG_ETC/server.crt'
ssl_key_file = '$PG_ETC/server.key'
CONF
run install -d -m 0750 -o root -g root "$CONFIG_DIR"
if [[ $CA_SOURCE == "$TLS_DIR/clinic-ca.pem" ]]; then
  # The clinic's CA and the server's certificate, made once; the CA key never leaves this root-only folder.
  run install -d -m 0700 -o root -g root "$TLS_DIR"
  run "$SCRIPT_DIR/make-clinic-tls.sh" "$TLS_DIR" "$SERVER_ADDRESS"
fi
run install -m 0644 -o postgres -g postgres "$CERT" "$PG_ETC/server.crt"
run install -m 0600 -o postgres -g postgres "$KEY" "$PG_ETC/server.key"
if [[ -f $PG_ETC/pg_hba.conf && ! -e $PG_ETC/pg_hba.conf.orig-centrovision ]] &&
  ! grep -q "Managed by centrovision" "$PG_ETC/pg_hba.conf"; then
  run cp -a "$PG_ETC/pg_hba.conf" "$PG_ETC/pg_hba.conf.orig-centrovision"
fi
write_managed "$PG_ETC/pg_hba.conf" 0640 <<HBA
# Managed by centrovision setup-server.sh: first match wins, nothing else is accepted.
# TYPE    DATABASE      USER                ADDRESS          METHOD
local     all           postgres                             peer
local     $DB_NAME  $ADMIN_LOGIN                   scram-sha-256
host      $DB_NAME  $ADMIN_LOGIN  127.0.0.1/32     scram-sha-256
host      $DB_NAME  $DAEMON_LOGIN      127.0.0.1/32     scram-sha-256
host      $DB_NAME  $DAEMON_LOGIN      ::1/128          scram-sha-256
# The PCs: their logins only, from the clinic subnet only, over TLS only.
hostssl   $DB_NAME  +centrovision_app   $SUBNET   scram-sha-256
# Anything else from the network without TLS is refused outright.
hostnossl all           all                 0.0.0.0/0        reject
hostnossl all           all                 ::/0             reject
HBA
run chown postgres:postgres "$PG_ETC/pg_hba.conf"
if [[ $SYSTEMD -eq 1 ]]; then
  run systemctl enable "postgresql@$PG_VERSION-$CLUSTER"
else
  echo "no systemd here: PostgreSQL is started with pg_ctlcluster"
fi
pg_service start
# listen_addresses and port take effect only at a restart (a cluster apt-get started listens on
# localhost only); everything else here at a reload.
if [[ $DRY_RUN -eq 1 ]]; then
  echo "would restart PostgreSQL if it does not yet listen on every address at port $PORT, else reload it"
elif [[ $(runuser -u postgres -- psql -X -q -At -d postgres -c 'show listen_addresses' 2>/dev/null) == '*' ]]; then
  pg_service reload
else
  pg_service restart
fi

# --- 1b. The host firewall: PostgreSQL's port from the clinic subnet only ------------------------
step "Firewall"
if [[ -n $ROOT ]]; then
  echo "--root: the host firewall is left alone (it is this machine's, not the tree's); on the server: $SCRIPT_DIR/postgresql-firewall.sh --firewall $FIREWALL $SUBNET $PORT"
else
  dry_run_flag=()
  [[ $DRY_RUN -eq 0 ]] || dry_run_flag=(--dry-run)
  "$SCRIPT_DIR/postgresql-firewall.sh" "${dry_run_flag[@]}" --firewall "$FIREWALL" "$SUBNET" "$PORT"
fi

# --- 2. Secrets, database and the admin login used by `init` ---------------------------------
step "Database $DB_NAME and logins"
run install -d -m 0700 -o root -g root "$CONFIG_DIR/secrets"
new_secret | write_new "$CONFIG_DIR/secrets/admin_password" 0600 root:root
new_secret | write_new "$CONFIG_DIR/secrets/db_password" 0600 root:root
new_secret | write_new "$CONFIG_DIR/secrets/pc_password" 0600 root:root
write_new "$CONFIG_DIR/anon_key" 0644 root:root <"$ANON_KEY_FILE"
psql_admin -d postgres -v db="$DB_NAME" <<'SQL'
select format('create database %I', :'db') where not exists (select from pg_database where datname = :'db') \gexec
SQL
# A superuser login reachable from this machine only (pg_hba), for migrations (`init`).
psql_admin -d postgres -v login="$ADMIN_LOGIN" <<'SQL'
select format('create role %I login superuser', :'login') where not exists (select from pg_roles where rolname = :'login') \gexec
SQL
# Its password from the secret file: a SCRAM-SHA-256 verifier on psql's stdin (set-role-password.sh).
run "$SCRIPT_DIR/set-role-password.sh" "$ADMIN_LOGIN" "$CONFIG_DIR/secrets/admin_password"

# --- 3. The daemon ------------------------------------------------------------------------------
step "Sync daemon"
if ! id "$SERVICE_USER" >/dev/null 2>&1; then
  run useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin "$SERVICE_USER"
fi
if [[ $FROM_CHECKOUT -eq 1 ]]; then
  echo "the daemon runs from this checkout: $REPO_DIR"
  run install -d -m 0755 "$(dirname "$BIN")"
  run ln -sf "$REPO_DIR/apps/sync-daemon/bin/centrovision-sync.mjs" "$BIN"
elif [[ -x $BIN ]]; then
  echo "the daemon is the centrovision-sync package's: $BIN ($(dpkg-query -W -f '${Version}' centrovision-sync 2>/dev/null || echo 'version unknown'))"
else
  echo "would use $BIN, the centrovision-sync package's (not installed here)"
fi
run chgrp "$SERVICE_USER" "$CONFIG_DIR" "$CONFIG_DIR/secrets"
run chmod 0750 "$CONFIG_DIR/secrets"
# The daemon's group reads its own secrets; the admin password stays root's (init runs as root).
for secret in db_password node_password; do
  if [[ -e $CONFIG_DIR/secrets/$secret || $DRY_RUN -eq 1 ]]; then
    run chgrp "$SERVICE_USER" "$CONFIG_DIR/secrets/$secret"
    run chmod 0640 "$CONFIG_DIR/secrets/$secret"
  fi
done
write_new "$CONFIG_DIR/sync.toml" 0640 "root:$SERVICE_USER" show <<TOML
# CentroVision clinic sync daemon. Reference: $README
[node]
name = "$NODE_NAME"

[cloud]
url = "$SUPABASE_URL"
anon_key_file = "anon_key"
node_password_file = "secrets/node_password"

[clinic]
url = "postgres://$DAEMON_LOGIN@127.0.0.1:$PORT/$DB_NAME"
password_file = "secrets/db_password"

[http]
port = 9187
TOML
# The clinic server's node credential in the cloud: the only use of the service-role key.
if grep -qs '^node_email' "$CONFIG_DIR/sync.toml"; then
  echo "keep the node credential in $CONFIG_DIR/sync.toml"
elif [[ $DRY_RUN -eq 1 ]]; then
  echo "would run: centrovision-sync node create --name '$CLINIC_NAME' --service-role-key-file $SERVICE_ROLE_KEY_FILE ${BRANCH_ARGS[*]}"
  echo "would add its node_email to [cloud] in $CONFIG_DIR/sync.toml"
else
  created=$("$BIN" --config "$CONFIG_DIR/sync.toml" node create \
    --name "$CLINIC_NAME" --service-role-key-file "$SERVICE_ROLE_KEY_FILE" "${BRANCH_ARGS[@]}")
  echo "$created"
  node_email=$(grep -m1 '^node_email = ' <<<"$created")
  sed -i "/^\[cloud\]/a $node_email" "$CONFIG_DIR/sync.toml"
  run chgrp "$SERVICE_USER" "$CONFIG_DIR/secrets/node_password"
  run chmod 0640 "$CONFIG_DIR/secrets/node_password"
fi
run "$BIN" --config "$CONFIG_DIR/sync.toml" init \
  --admin-url "postgres://$ADMIN_LOGIN@127.0.0.1:$PORT/$DB_NAME" --admin-password-file "$CONFIG_DIR/secrets/admin_password"
# The PCs' login: only the app role, only from the clinic subnet (pg_hba above). By itself it reads
# and writes no EHR row: a staff member signs in on the PC, and their clinic session decides (sql/0003).
psql_admin -d "$DB_NAME" -v login="$PC_LOGIN" <<'SQL'
select format('create role %I login in role centrovision_app', :'login') where not exists (select from pg_roles where rolname = :'login') \gexec
SQL
run "$SCRIPT_DIR/set-role-password.sh" "$PC_LOGIN" "$CONFIG_DIR/secrets/pc_password"
if [[ $FROM_CHECKOUT -eq 1 ]]; then
  # The package's unit, started on this checkout's bin.
  run install -d -m 0755 "$UNIT_DIR"
  sed -e "s|^ExecStart=$PACKAGE_BIN |ExecStart=$BIN |" -e "s|^Documentation=.*|Documentation=file://$README|" \
    "$SCRIPT_DIR/centrovision-sync.service" |
    write_managed "$UNIT_DIR/centrovision-sync.service" 0644
  unit_is="written to $UNIT_DIR"
else
  unit_is="the package's, in /lib/systemd/system"
fi
if [[ $SYSTEMD -eq 1 ]]; then
  run systemctl daemon-reload
  run systemctl enable --now centrovision-sync
else
  echo "no systemd here (or --root): centrovision-sync.service ($unit_is) is not enabled; run the daemon with: $BIN --config $CONFIG_DIR/sync.toml run"
fi

# --- 4. Nightly backup with rotation and a restore check --------------------------------------
step "Nightly backup ($BACKUP_DIR, $KEEP_DAYS days)"
run install -d -m 0700 -o postgres -g postgres "$BACKUP_DIR"
run install -d -m 0755 "$(dirname "$BACKUP_BIN")" "$UNIT_DIR"
write_managed "$BACKUP_BIN" 0755 <<BACKUP
#!/usr/bin/env bash
# Managed by centrovision setup-server.sh. Runs as postgres from centrovision-backup.timer.
set -euo pipefail
export PGPORT=$PORT
dump="$BACKUP_DIR/$DB_NAME-\$(date +%Y%m%d-%H%M%S).dump"
pg_dump --format=custom --file="\$dump.partial" "$DB_NAME"
mv "\$dump.partial" "\$dump"
# Restore check: the dump must restore into a scratch database and hold the patients.
dropdb --if-exists centrovision_restore_check
createdb centrovision_restore_check
pg_restore --exit-on-error --no-owner --dbname=centrovision_restore_check "\$dump"
psql -X -q -At -d centrovision_restore_check -c 'select count(*) from public.patients' >/dev/null
dropdb centrovision_restore_check
find "$BACKUP_DIR" -name '$DB_NAME-*.dump' -mtime +$KEEP_DAYS -delete
echo "backup ok: \$dump"
BACKUP
write_managed "$UNIT_DIR/centrovision-backup.service" 0644 <<UNIT
[Unit]
Description=CentroVision nightly pg_dump with restore check
After=postgresql.service

[Service]
Type=oneshot
User=postgres
ExecStart=$BACKUP_BIN
UNIT
write_managed "$UNIT_DIR/centrovision-backup.timer" 0644 <<UNIT
[Unit]
Description=CentroVision nightly backup

[Timer]
OnCalendar=*-*-* 02:30:00
Persistent=true

[Install]
WantedBy=timers.target
UNIT
if [[ $SYSTEMD -eq 1 ]]; then
  run systemctl daemon-reload
  run systemctl enable --now centrovision-backup.timer
else
  echo "no systemd here (or --root): centrovision-backup.timer is written, not enabled; run $BACKUP_BIN as postgres from cron instead"
fi

# --- 5. Client config for the PCs --------------------------------------------------------------
step "Client config for the PCs ($CONFIG_DIR/clients)"
run install -d -m 0700 -o root -g root "$CONFIG_DIR/clients"
if [[ -n $PC_BRANCH_ID ]]; then
  branch_line="branch_id = \"$PC_BRANCH_ID\""
else
  branch_line="# FILL IN before copying: the id (UUID) of the branch this PC shows by default, then
# remove the '#' (the desktop refuses this file without it):
# branch_id = \"<the branch's id>\""
fi
# The desktop's schema (apps/desktop/src/config.ts): relative paths are relative to this file's folder.
write_new "$CONFIG_DIR/clients/config.toml" 0600 root:root show <<TOML
# CentroVision desktop. Copy this folder's config.toml, local_server_password and clinic-ca.pem to
# each PC's ~/.centrovision/ (the user's own; chmod 600 config.toml local_server_password).
$branch_line

[supabase]
url = "$SUPABASE_URL"
anon_key = "$ANON_KEY"

[local_server]
url = "postgres://$SERVER_ADDRESS:$PORT/$DB_NAME"
user = "$PC_LOGIN"
password_file = "local_server_password"
# Only TLS, checked against the clinic's CA and this server's address.
tls = "verify-full"
ca_file = "clinic-ca.pem"

[sqlite]
path = "local.cvdb"
key_file = "keys/local.key"
TOML
if [[ -f $CONFIG_DIR/clients/config.toml ]] && ! grep -q '^tls = "verify-full"' "$CONFIG_DIR/clients/config.toml"; then
  echo "warning: $CONFIG_DIR/clients/config.toml was written by an earlier version (no TLS, not the desktop's format): move it away and run again" >&2
fi
run install -m 0644 -o root -g root "$CA_SOURCE" "$CONFIG_DIR/clients/clinic-ca.pem"
if [[ $DRY_RUN -eq 1 ]]; then
  echo "would copy $CONFIG_DIR/secrets/pc_password to $CONFIG_DIR/clients/local_server_password"
else
  write_new "$CONFIG_DIR/clients/local_server_password" 0600 root:root <"$CONFIG_DIR/secrets/pc_password"
fi

echo
if [[ -z $PC_BRANCH_ID ]] && ! grep -qs '^branch_id = ' "$CONFIG_DIR/clients/config.toml"; then
  echo "To do: fill in branch_id in $CONFIG_DIR/clients/config.toml (the branch's id, a UUID) before copying it to the PCs, or run again with --pc-branch-id after moving that file away."
fi
if [[ $DRY_RUN -eq 1 ]]; then
  echo "Dry run: nothing was changed."
else
  echo "Done. Check it with: centrovision-sync --config $CONFIG_DIR/sync.toml doctor"
fi
