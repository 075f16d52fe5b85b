#!/usr/bin/env bash
# What `make test` needs beside Go: gcc (the race detector needs cgo), redis-server (the Redis
# tests start their own on a free loopback port, Clusters and Sentinels too), haproxy, chromium (the sign-in pages are driven in a
# real browser), and the real MCP clients the end-to-end tests
# drive (testdata/clients: the conformance suite and the TypeScript SDK on Node 22, installed
# with `npm ci` from the committed lockfile whenever node_modules is missing or older than it).
# Found on the PATH or in /usr/bin; else installed with apt-get when this runs as root on
# Debian/Ubuntu; else the one command to run.
set -euo pipefail
cd "$(dirname "$0")/.."
clients=testdata/clients

# node_modules is current when npm's own record of the install is newer than the lockfile and
# package.json (a checkout that changes either makes it stale).
clients_current() {
  local stamp=$clients/node_modules/.package-lock.json
  [ -f "$stamp" ] && [ ! "$clients/package-lock.json" -nt "$stamp" ] && [ ! "$clients/package.json" -nt "$stamp" ] &&
    [ -x "$clients/node_modules/.bin/node" ] && [ -e "$clients/node_modules/.bin/conformance" ]
}

need=()
command -v gcc >/dev/null || need+=(gcc libc6-dev)
command -v redis-server >/dev/null || [ -x /usr/bin/redis-server ] || need+=(redis-server)
# The browser tests of the authorization server's pages drive headless Chromium (chromedp).
command -v chromium >/dev/null || [ -x /usr/bin/chromium ] || need+=(chromium)
# The scale-out tests put three instances behind HAProxy with deploy/haproxy.cfg.
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
clients_current || command -v npm >/dev/null || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "make test: installing ${need[*]} (apt-get)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq "${need[@]}"
  else
    echo "make test needs ${need[*]}; install with:" >&2
    if command -v apt-get >/dev/null; then
      echo "  sudo apt-get install -y ${need[*]}" >&2
    else
      echo "  your package manager (e.g. brew install redis node, dnf install redis gcc npm)" >&2
    fi
    exit 1
  fi
fi

if ! clients_current; then
  echo "make test: installing the MCP test clients (npm ci in $clients)" >&2
  # Install scripts run: the npm package `node` fetches the Node 22 binary in its preinstall
  # (allowed by name in package.json's allowScripts).
  if ! (cd "$clients" && npm ci --no-audit --no-fund --loglevel=error); then
    echo "make test: npm ci in $clients failed (it needs the npm registry); run it by hand:" >&2
    echo "  (cd $clients && npm ci)" >&2
    exit 1
  fi
  touch "$clients/node_modules/.package-lock.json"
fi
if ! v=$("$clients/node_modules/.bin/node" --version 2>&1) || [[ "$v" != v22.* ]]; then
  echo "make test: $clients/node_modules/.bin/node is not Node 22 ($v); reinstall with:" >&2
  echo "  rm -rf $clients/node_modules && make test-deps" >&2
  exit 1
fi
