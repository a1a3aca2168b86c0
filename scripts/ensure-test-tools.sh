#!/usr/bin/env bash
# Runs before `npm test`: the tests use real Prometheus and promtool (Debian's `prometheus`
# package), Debian's `docker-compose` (offline validation of the compose files), Alertmanager
# with amtool (Debian's prometheus-alertmanager) and python3-prometheus-client (the official
# client's exposition parsers, under Debian's own python3); for the protobuf exposition, protoc
# (protobuf-compiler) with the well-known types' .proto files (libprotobuf-dev: metrics.proto
# imports google/protobuf/timestamp.proto) and python3-protobuf, which decode every protobuf
# answer independently of protobufjs. Installs what is missing with apt-get when run as root;
# otherwise says what to install and stops. Then fetches Prometheus 3.5 LTS, Alertmanager 0.33
# and the official metrics.proto from newer Debian suites into .tools/prometheus-3/, unpacked,
# never installed (scripts/fetch-prometheus3.sh): the tests prefer those (harness/tools.ts),
# the packages above stay for docker-compose, python and as the fallback.
set -euo pipefail
here=$(dirname "$0")

missing=()
# PROMETHEUS_BIN and PROMTOOL_BIN name other binaries than Debian's (e.g. a newer release): they
# are checked, never installed.
check_override() { # variable, default command, Debian package
  local bin="${!1:-$2}"
  command -v "$bin" >/dev/null 2>&1 && return 0
  if [ -n "${!1:-}" ]; then
    echo "$1=$bin is not an executable" >&2
    exit 1
  fi
  missing+=("$3")
}
check_override PROMETHEUS_BIN prometheus prometheus
check_override PROMTOOL_BIN promtool prometheus
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v amtool >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
command -v prometheus-alertmanager >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
/usr/bin/python3 -c 'import prometheus_client' >/dev/null 2>&1 || missing+=(python3-prometheus-client)
command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
[ -f /usr/include/google/protobuf/timestamp.proto ] || missing+=(libprotobuf-dev)
/usr/bin/python3 -c 'import google.protobuf' >/dev/null 2>&1 || missing+=(python3-protobuf)
if [ ${#missing[@]} -eq 0 ]; then
  exec bash "$here/fetch-prometheus3.sh"
fi

packages=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing test tools: ${packages}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends ${packages} >/dev/null
else
  echo "the tests need these Debian packages: ${packages}" >&2
  echo "install them with: sudo apt-get install -y ${packages}" >&2
  exit 1
fi
exec bash "$here/fetch-prometheus3.sh"
