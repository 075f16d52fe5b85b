#!/usr/bin/env bash
# What `make test` needs beside Go: gcc (the race detector needs cgo) and redis-server (the
# Redis tests start their own on a free loopback port). Found on the PATH or in /usr/bin; else
# installed with apt-get when this runs as root on Debian/Ubuntu; else the one command to run.
set -euo pipefail
need=()
command -v gcc >/dev/null || need+=(gcc libc6-dev)
command -v redis-server >/dev/null || [ -x /usr/bin/redis-server ] || need+=(redis-server)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "make test: installing ${need[*]} (apt-get)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${need[@]}"
  exit 0
fi
echo "make test needs ${need[*]}; install with:" >&2
if command -v apt-get >/dev/null; then
  echo "  sudo apt-get install -y ${need[*]}" >&2
else
  echo "  your package manager (e.g. brew install redis, dnf install redis gcc)" >&2
fi
exit 1
