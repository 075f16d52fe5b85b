#!/usr/bin/env bash
# The vulnerability check of `make lint`: govulncheck (pinned by the tool line in go.mod)
# against an offline database built from the OSV files of golang.org/x/vulndb (pinned in
# internal/tools/vulndb/go.mod), failing on every finding reachable from our code that
# .ci/govulncheck-accepted.txt does not list. The database is built with vulndb's cmd/indexdb
# once per vulndb version, into $(go env GOCACHE)/mcpauth-vulndb/VERSION (MCPAUTH_VULNDB=DIR
# to put it elsewhere); every run after that reads it from there.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
accepted=.ci/govulncheck-accepted.txt

tools=internal/tools/vulndb
ver=$(cd "$tools" && $GO list -m -f '{{.Version}}' golang.org/x/vulndb)
db=${MCPAUTH_VULNDB:-$($GO env GOCACHE)/mcpauth-vulndb/$ver}
if [ ! -f "$db/index/db.json" ]; then
  echo "govulncheck: building the vulnerability database of golang.org/x/vulndb@$ver in $db"
  (cd "$tools" && $GO mod download golang.org/x/vulndb)
  osv=$(cd "$tools" && $GO list -m -f '{{.Dir}}' golang.org/x/vulndb)/data/osv
  mkdir -p "$(dirname "$db")"
  tmp=$db.tmp.$$
  rm -rf "$tmp"
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tools" && $GO tool indexdb -vulns "$osv" -out "$tmp")
  rm -rf "$db"
  mv "$tmp" "$db"
fi

out=$(mktemp)
trap 'rm -f "$out"' EXIT
rc=0
$GO tool govulncheck -db "file://$db" ./... >"$out" 2>&1 || rc=$?
# 0: nothing reachable; 3: reachable findings, listed as "Vulnerability #N: ID"; else an error.
if [ "$rc" -ne 0 ] && [ "$rc" -ne 3 ]; then
  cat "$out"
  echo "govulncheck: failed (exit $rc)" >&2
  exit 1
fi
found=$(grep -oE '^Vulnerability #[0-9]+: [A-Z]+-[0-9]+-[0-9]+' "$out" | awk '{print $3}' | sort -u || true)
ok=$(grep -oE '^[A-Z]+-[0-9]+-[0-9]+' "$accepted" | sort -u || true)
new=$(comm -23 <(printf '%s\n' $found) <(printf '%s\n' $ok))
stale=$(comm -13 <(printf '%s\n' $found) <(printf '%s\n' $ok))
for id in $stale; do echo "govulncheck: $id is in $accepted but no longer found: take it out"; done
if [ -n "$new" ]; then
  cat "$out"
  echo "govulncheck: reachable and not accepted in $accepted:" $new >&2
  exit 1
fi
echo "govulncheck: no reachable vulnerability (vulndb $ver) but the accepted:" $found
