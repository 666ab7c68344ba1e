#!/usr/bin/env bash
# Sets a PostgreSQL login's password from a secret file, as setup-server.sh does for its logins:
#
#   set-role-password.sh LOGIN SECRET_FILE
#
# The secret is never a process argument (anyone on the machine reads those in /proc/<pid>/cmdline)
# and never reaches the server in clear (a statement log or pg_stat_statements would keep it): node
# reads the file on its stdin and computes the SCRAM-SHA-256 verifier here, as psql's \password
# does, and psql, as postgres over the local socket (peer), gets the statement on its stdin.
# The file holds the password alone; surrounding whitespace is ignored, as the daemon ignores it.
set -euo pipefail

die() {
  echo "set-role-password.sh: $*" >&2
  exit 2
}

[[ $# -eq 2 ]] || die "usage: set-role-password.sh LOGIN SECRET_FILE"
login=$1
secret_file=$2
[[ $login =~ ^[a-z_][a-z0-9_]{0,62}$ ]] || die "LOGIN must be a lower-case identifier"
[[ -r $secret_file ]] || die "cannot read $secret_file"

# PostgreSQL's verifier format (RFC 5802/7677): the same as the daemon's scramVerifier (src/init.ts).
# shellcheck disable=SC2016 # JavaScript, not shell: nothing in it is to be expanded
verifier=$(node -e '
const { createHash, createHmac, pbkdf2Sync, randomBytes } = require("node:crypto");
const password = require("node:fs").readFileSync(0, "utf8").trim();
if (password === "") {
  console.error("set-role-password.sh: the secret file is empty");
  process.exit(2);
}
const salt = randomBytes(16);
const salted = pbkdf2Sync(password.normalize("NFKC"), salt, 4096, 32, "sha256");
const key = (name) => createHmac("sha256", salted).update(name).digest();
const stored = createHash("sha256").update(key("Client Key")).digest();
process.stdout.write(`SCRAM-SHA-256$4096:${salt.toString("base64")}$${stored.toString("base64")}:${key("Server Key").toString("base64")}`);
' <"$secret_file")
b64='[A-Za-z0-9+/]+=*'
[[ $verifier =~ ^SCRAM-SHA-256\$4096:$b64\$$b64:$b64$ ]] ||
  die "could not compute the SCRAM-SHA-256 verifier of $secret_file (Node.js 20 or newer is needed)"

runuser -u postgres -- psql -v ON_ERROR_STOP=1 -X -q -d postgres >/dev/null <<SQL
\\set login '$login'
\\set verifier '$verifier'
select format('alter role %I password %L', :'login', :'verifier') \\gexec
SQL
echo "set the password of $login from $secret_file (sent as a SCRAM-SHA-256 verifier)"
