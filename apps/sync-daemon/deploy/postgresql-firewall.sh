#!/usr/bin/env bash
# Lets only the clinic subnet and this machine reach PostgreSQL's port, with the host firewall in
# use, as setup-server.sh does after writing pg_hba.conf:
#
#   postgresql-firewall.sh [--dry-run] [--firewall auto|ufw|firewalld|nftables|none]
#                          [--rules-file FILE] SUBNET PORT
#
# pg_hba.conf already refuses every other client; the firewall keeps them from reaching PostgreSQL
# at all (no TLS handshake, no password guessing, no server to probe). --firewall auto (the default)
# takes the first of:
#   ufw        when active: allow PORT/tcp from SUBNET (first rule), reject it from anywhere else
#   firewalld  when running: a rich rule accepting SUBNET on PORT/tcp in the default zone, which
#              rejects whatever it does not accept
#   nftables   when nft is installed: a table of its own, `inet centrovision`, from --rules-file
#              (default /etc/centrovision/postgresql-firewall.nft): PORT/tcp from SUBNET and the
#              loopback accepted, any other rejected. It only ever rejects, so it opens nothing that
#              another table closes. Loaded now, and at boot by centrovision-firewall.service
#              (after nftables.service, whose `flush ruleset` would drop it) where systemd runs
#   none       nothing is changed; says so
# Outside the subnet a client is rejected (it fails at once, "No route to host" or "Connection
# refused", rather than hanging), like pg_hba.conf's own `reject` one layer up.
#
# Idempotent: run again, it changes nothing (ufw and firewalld skip a rule they have; the nftables
# file is rewritten only when it differs, and loading it replaces the table whole). It says what it
# did, and warns about rules that open the port to everyone else. Bad input: a message and exit 2.
set -euo pipefail

DRY_RUN=0
FIREWALL=auto
RULES_FILE=/etc/centrovision/postgresql-firewall.nft
UNIT_FILE=/etc/systemd/system/centrovision-firewall.service

die() {
  echo "postgresql-firewall.sh: $*" >&2
  exit 2
}

args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --dry-run) DRY_RUN=1; shift ;;
    --firewall) FIREWALL=${2:-}; shift 2 ;;
    --rules-file) RULES_FILE=${2:-}; shift 2 ;;
    -*) die "unknown option: $1" ;;
    *) args+=("$1"); shift ;;
  esac
done
[[ ${#args[@]} -eq 2 ]] ||
  die "usage: postgresql-firewall.sh [--dry-run] [--firewall auto|ufw|firewalld|nftables|none] [--rules-file FILE] SUBNET PORT"
SUBNET=${args[0]}
PORT=${args[1]}
[[ $SUBNET =~ ^([0-9]{1,3}\.){3}[0-9]{1,3}/([0-9]|[12][0-9]|3[0-2])$ ]] ||
  die "SUBNET must be an IPv4 CIDR such as 192.168.1.0/24 (got '$SUBNET')"
[[ $PORT =~ ^[1-9][0-9]{0,4}$ && $PORT -le 65535 ]] || die "PORT must be a TCP port such as 5432 (got '$PORT')"
[[ $RULES_FILE == /* ]] || die "--rules-file must be an absolute path (the boot unit loads it)"

run() {
  if [[ $DRY_RUN -eq 1 ]]; then
    echo "would run: $*"
  else
    echo "+ $*"
    "$@"
  fi
}

# write_managed PATH: writes stdin to PATH (0644) unless it already holds exactly that; returns 1
# when it was already so.
write_managed() {
  local path=$1 content
  content=$(cat)
  if [[ -f $path ]] && [[ $(cat "$path") == "$content" ]]; then
    echo "unchanged $path"
    return 1
  fi
  if [[ $DRY_RUN -eq 1 ]]; then
    echo "would write $path (mode 0644):"
    printf '%s\n' "$content" | sed 's/^/    /'
    return 0
  fi
  # An existing folder keeps its mode (/etc/centrovision is 0750).
  [[ -d $(dirname "$path") ]] || install -d -m 0755 "$(dirname "$path")"
  install -m 0644 /dev/null "$path"
  printf '%s\n' "$content" >"$path"
  echo "wrote $path"
}

# summary TOOL TEXT: what the port's firewall is (or, with --dry-run, would be) once this has run.
summary() {
  if [[ $DRY_RUN -eq 1 ]]; then
    echo "would set the firewall ($1): $2"
  else
    echo "firewall ($1): $2"
  fi
}

ufw_active() { command -v ufw >/dev/null 2>&1 && [[ $(ufw status 2>/dev/null | head -n 1) == "Status: active" ]]; }
firewalld_running() { command -v firewall-cmd >/dev/null 2>&1 && [[ $(firewall-cmd --state 2>/dev/null) == running ]]; }

REQUESTED=$FIREWALL
case "$FIREWALL" in
  auto)
    if ufw_active; then
      FIREWALL=ufw
    elif firewalld_running; then
      FIREWALL=firewalld
    elif command -v nft >/dev/null 2>&1; then
      FIREWALL=nftables
    else
      FIREWALL=none
    fi
    ;;
  ufw) command -v ufw >/dev/null 2>&1 || die "--firewall ufw: ufw is not installed (apt-get install ufw)" ;;
  firewalld) firewalld_running || die "--firewall firewalld: firewalld is not running (systemctl start firewalld)" ;;
  nftables) command -v nft >/dev/null 2>&1 || die "--firewall nftables: nft is not installed (apt-get install nftables)" ;;
  none) ;;
  *) die "--firewall must be auto, ufw, firewalld, nftables or none (got '$FIREWALL')" ;;
esac

case "$FIREWALL" in
  ufw)
    # Prepended, so it comes before any reject or deny of the port; ufw skips a rule it has.
    run ufw prepend allow proto tcp from "$SUBNET" to any port "$PORT" comment "centrovision: PostgreSQL from the clinic subnet"
    run ufw reject proto tcp to any port "$PORT" comment "centrovision: PostgreSQL from anywhere else"
    # An earlier ALLOW for the port from elsewhere still matches first: name it, never delete it.
    while read -r line; do
      echo "postgresql-firewall.sh: warning: ufw also allows port $PORT from elsewhere: '$line' (remove it with: ufw status numbered, then ufw delete N)" >&2
    done < <(ufw status 2>/dev/null | grep -E "^$PORT(/tcp)?( \(v6\))? +ALLOW" | grep -vF " $SUBNET" || true)
    summary "ufw" "port $PORT/tcp accepts $SUBNET and this machine only; any other client is rejected"
    ;;
  firewalld)
    zone=$(firewall-cmd --get-default-zone)
    rule="rule family=\"ipv4\" source address=\"$SUBNET\" port port=\"$PORT\" protocol=\"tcp\" accept"
    if firewall-cmd --permanent --zone="$zone" --query-rich-rule="$rule" >/dev/null 2>&1; then
      echo "firewalld: zone $zone already accepts $SUBNET on port $PORT/tcp"
    else
      run firewall-cmd --permanent --zone="$zone" --add-rich-rule="$rule"
      run firewall-cmd --reload
    fi
    if firewall-cmd --permanent --zone="$zone" --query-service=postgresql >/dev/null 2>&1 ||
      firewall-cmd --permanent --zone="$zone" --query-port="$PORT/tcp" >/dev/null 2>&1; then
      echo "postgresql-firewall.sh: warning: firewalld's zone $zone also opens port $PORT to everyone: firewall-cmd --permanent --zone=$zone --remove-service=postgresql --remove-port=$PORT/tcp && firewall-cmd --reload" >&2
    fi
    if [[ $(firewall-cmd --permanent --zone="$zone" --get-target 2>/dev/null) == ACCEPT ]]; then
      echo "postgresql-firewall.sh: warning: firewalld's zone $zone accepts every connection (target ACCEPT), so the rule restricts nothing: make $zone reject (firewall-cmd --permanent --zone=$zone --set-target=default) or use another default zone" >&2
    fi
    summary "firewalld, zone $zone" "port $PORT/tcp accepts $SUBNET and this machine; the zone rejects other clients"
    ;;
  nftables)
    # The first line creates the table if missing, so that deleting it never fails: the file
    # replaces the table whole, in one transaction, however often it is loaded.
    write_managed "$RULES_FILE" <<NFT || true
# Managed by centrovision setup-server.sh (postgresql-firewall.sh): PostgreSQL's port $PORT/tcp
# accepts the clinic subnet $SUBNET and this machine only. Run the script again to change it.
table inet centrovision
delete table inet centrovision
table inet centrovision {
	chain postgresql {
		# Before the usual filter chains: a reject here stands whatever another table accepts.
		type filter hook input priority filter - 10; policy accept;
		tcp dport $PORT iif "lo" accept
		tcp dport $PORT ip saddr $SUBNET accept
		tcp dport $PORT reject with icmpx type admin-prohibited
	}
}
NFT
    run nft -f "$RULES_FILE"
    if [[ -d /run/systemd/system ]]; then
      if write_managed "$UNIT_FILE" <<UNIT; then
# Managed by centrovision setup-server.sh: loads $RULES_FILE at boot.
[Unit]
Description=CentroVision: PostgreSQL's port from the clinic subnet only (nftables)
DefaultDependencies=no
Wants=network-pre.target
Before=network-pre.target shutdown.target
Conflicts=shutdown.target
# nftables.service's /etc/nftables.conf starts with "flush ruleset": load after it, and again
# whenever it is restarted.
After=nftables.service
PartOf=nftables.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=$(command -v nft) -f $RULES_FILE

[Install]
WantedBy=sysinit.target
UNIT
        run systemctl daemon-reload
      fi
      run systemctl enable centrovision-firewall.service
      summary "nftables" "port $PORT/tcp accepts $SUBNET and this machine only; any other client is rejected (table inet centrovision, from $RULES_FILE, loaded at boot by centrovision-firewall.service)"
    else
      summary "nftables" "port $PORT/tcp accepts $SUBNET and this machine only; any other client is rejected (table inet centrovision, from $RULES_FILE)"
      echo "no systemd here: the table holds until the next boot; load it at boot with: nft -f $RULES_FILE"
    fi
    ;;
  none)
    if [[ $REQUESTED == none ]]; then
      echo "firewall: left alone (--firewall none): PostgreSQL's port $PORT is guarded by pg_hba.conf and whatever firewall the network has"
    else
      echo "firewall: none found (no active ufw, no running firewalld, no nft): PostgreSQL's port $PORT is guarded by pg_hba.conf alone; apt-get install nftables and run this again to add one"
    fi
    ;;
esac
