#!/usr/bin/env bash
# Makes the clinic's own certificate authority and the clinic server's TLS certificate, as
# setup-server.sh does when no --cert is given:
#
#   make-clinic-tls.sh OUT_DIR SERVER_ADDRESS [DNS_NAME...]
#
# In OUT_DIR (created 0700 when missing):
#   clinic-ca.key   the CA's private key (EC P-256, mode 0600): it never leaves this folder
#   clinic-ca.pem   the CA's certificate (10 years, CA:TRUE, keyCertSign): the PCs pin it (verify-full)
#   server.key      PostgreSQL's private key (EC P-256, mode 0600)
#   server.crt      PostgreSQL's certificate, signed by the CA (2 years, serverAuth), naming
#                   SERVER_ADDRESS (an IPv4 address) and each DNS_NAME in its subjectAltName
#
# Idempotent: a file that exists is never overwritten. A pair that exists is checked instead (the
# server certificate must chain to the CA and name SERVER_ADDRESS); to issue a new one, move the
# old pair away first. Keys are written by openssl straight to files (no passphrase, no key on any
# process argument), under umask 077, to a temporary name renamed into place once complete. Only
# file names are printed. Bad input: a message and exit 2.
set -euo pipefail
umask 077

die() {
  echo "make-clinic-tls.sh: $*" >&2
  exit 2
}

[[ $# -ge 2 ]] || die "usage: make-clinic-tls.sh OUT_DIR SERVER_ADDRESS [DNS_NAME...]"
out=$1
address=$2
shift 2
names=("$@")

[[ -n $out ]] || die "OUT_DIR must not be empty"
octet='(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])'
[[ $address =~ ^$octet\.$octet\.$octet\.$octet$ ]] ||
  die "SERVER_ADDRESS must be the IPv4 address the PCs use for the server, such as 192.168.1.10 (got '$address')"
label='[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?'
for name in "${names[@]}"; do
  [[ ${#name} -le 253 && $name =~ ^$label(\.$label)*$ ]] ||
    die "DNS_NAME must be a host name such as clinic-server.local (got '$name')"
done
command -v openssl >/dev/null 2>&1 || die "openssl is needed: apt-get install openssl"
[[ -e $out && ! -d $out ]] && die "$out exists and is not a folder"

ca_key="$out/clinic-ca.key"
ca_cert="$out/clinic-ca.pem"
server_key="$out/server.key"
server_cert="$out/server.crt"

# A half pair cannot be completed without overwriting or orphaning the other half: say so.
pair_state() {
  if [[ -e $1 && -e $2 ]]; then
    echo both
  elif [[ -e $1 || -e $2 ]]; then
    die "only one of $1 and $2 exists: move it away (or restore the other) and run again"
  else
    echo none
  fi
}
ca_state=$(pair_state "$ca_key" "$ca_cert") || exit 2
server_state=$(pair_state "$server_key" "$server_cert") || exit 2
if [[ $ca_state == none && $server_state == both ]]; then
  die "$server_cert exists without the CA that signed it ($ca_cert): move server.crt and server.key away and run again"
fi

mkdir -p "$out"
chmod 0700 "$out"
work=$(mktemp -d "$out/.make-clinic-tls.XXXXXX")
trap 'rm -rf "$work"' EXIT

# openssl's chatter goes to a log, shown only when it fails (it never holds a key).
ssl() {
  if ! openssl "$@" >"$work/log" 2>&1; then
    cat "$work/log" >&2
    echo "make-clinic-tls.sh: openssl $1 failed" >&2
    exit 1
  fi
}

# The configuration is ours alone: the system's openssl.cnf adds nothing.
san="IP:$address"
for name in "${names[@]}"; do san+=",DNS:$name"; done
cat >"$work/openssl.cnf" <<CNF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[clinic_ca]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[clinic_server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = $san
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
CNF

new_key() { ssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }
serial() { echo "0x$(openssl rand -hex 16)"; }

if [[ $ca_state == none ]]; then
  new_key "$work/ca.key"
  ssl req -config "$work/openssl.cnf" -new -x509 -key "$work/ca.key" -sha256 -days 3650 \
    -set_serial "$(serial)" -subj "/O=CentroVision/CN=CentroVision clinic CA $(date -u +%Y-%m-%d)" \
    -extensions clinic_ca -out "$work/ca.pem"
  chmod 0644 "$work/ca.pem"
  mv "$work/ca.key" "$ca_key"
  mv "$work/ca.pem" "$ca_cert"
  echo "created $ca_key"
  echo "created $ca_cert"
else
  echo "kept $ca_key (exists, never overwritten)"
  echo "kept $ca_cert (exists, never overwritten)"
fi

if [[ $server_state == none ]]; then
  new_key "$work/server.key"
  ssl req -config "$work/openssl.cnf" -new -key "$work/server.key" -subj "/O=CentroVision/CN=$address" \
    -out "$work/server.csr"
  ssl x509 -req -in "$work/server.csr" -CA "$ca_cert" -CAkey "$ca_key" -set_serial "$(serial)" \
    -sha256 -days 730 -extfile "$work/openssl.cnf" -extensions clinic_server -out "$work/server.crt"
  chmod 0644 "$work/server.crt"
  mv "$work/server.key" "$server_key"
  mv "$work/server.crt" "$server_cert"
  echo "created $server_key"
  echo "created $server_cert"
else
  echo "kept $server_key (exists, never overwritten)"
  echo "kept $server_cert (exists, never overwritten)"
fi

# What exists must still do its job: the PCs check the chain and the address (verify-full).
openssl verify -CAfile "$ca_cert" "$server_cert" >/dev/null 2>&1 ||
  die "$server_cert is not signed by $ca_cert: move server.crt and server.key away and run again"
[[ $(openssl x509 -in "$server_cert" -noout -checkip "$address" 2>/dev/null) == *" does match "* ]] ||
  die "$server_cert does not name $address: move server.crt and server.key away and run again for a new one"
openssl x509 -in "$server_cert" -noout -checkend $((30 * 86400)) >/dev/null 2>&1 ||
  echo "make-clinic-tls.sh: warning: $server_cert expires within 30 days: move server.crt and server.key away and run again" >&2
