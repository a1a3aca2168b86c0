#!/usr/bin/env bash
# Starts and stops a Docker engine for the container tier, on a machine where none runs as a
# service (no systemd): `start` uses an engine that already answers and leaves it as it is;
# otherwise, as root, it starts Debian's dockerd (package docker.io) in the background, waits
# until it answers, and records that it did. It runs at normal priority: the containers it runs
# are what the tier measures (health within the start period, a stop within its grace period). `stop` stops only an engine that `start`
# started, so an idle dockerd does not stay behind; `status` says which case holds.
#
# A dockerd that cannot start is reported with the lines of its log that say why (cgroups,
# storage driver, iptables), and `start` exits 1.
#   DOCKER (client, default docker), DOCKER_ENGINE_STATE (default /run/fastify-pm2-cluster-metrics-dockerd)
set -euo pipefail

docker=${DOCKER:-docker}
state=${DOCKER_ENGINE_STATE:-/run/fastify-pm2-cluster-metrics-dockerd}
say() { echo "docker-engine: $*"; }
fail() {
  echo "docker-engine: $*" >&2
  exit 1
}
answers() { "$docker" version --format '{{.Server.Version}}' 2>/dev/null; }
ours() { [ -f "$state/pid" ] && kill -0 "$(cat "$state/pid")" 2>/dev/null; }

start() {
  local version pid
  if version=$(answers); then
    if ours; then
      say "engine $version already running (started by this script, pid $(cat "$state/pid"))"
    else
      say "engine $version already running, not started here: left as it is"
    fi
    return 0
  fi
  command -v dockerd >/dev/null 2>&1 || fail "no engine answers and there is no dockerd (Debian package docker.io)"
  [ "$(id -u)" -eq 0 ] || fail "no engine answers, and starting dockerd needs root"
  mkdir -p "$state"
  : >"$state/dockerd.log"
  # setsid: the engine does not belong to the caller's process group or terminal.
  setsid dockerd >"$state/dockerd.log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$state/pid"
  for _ in $(seq 1 60); do
    if version=$(answers); then
      say "started dockerd $version (pid $pid, log $state/dockerd.log)"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$state/pid"
      echo "docker-engine: dockerd exited before it answered; its log says:" >&2
      grep -iE 'level=(error|fatal)|failed|cannot|not supported|iptables|cgroup' "$state/dockerd.log" | tail -n 15 >&2 ||
        tail -n 15 "$state/dockerd.log" >&2
      exit 1
    fi
    sleep 1
  done
  kill -TERM "$pid" 2>/dev/null || true
  rm -f "$state/pid"
  tail -n 15 "$state/dockerd.log" >&2
  fail "dockerd did not answer within 60 s; stopped it"
}

stop() {
  local pid
  if ! ours; then
    rm -f "$state/pid"
    if answers >/dev/null; then say "the running engine was not started here: left running"; fi
    return 0
  fi
  pid=$(cat "$state/pid")
  kill -TERM "$pid"
  for _ in $(seq 1 30); do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$state/pid"
      say "stopped dockerd (pid $pid)"
      return 0
    fi
    sleep 1
  done
  fail "dockerd (pid $pid) did not stop within 30 s of SIGTERM"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status)
  if version=$(answers); then
    if ours; then say "engine $version running, started here (pid $(cat "$state/pid"))"; else say "engine $version running, not started here"; fi
  else
    say "no engine answers"
    exit 1
  fi
  ;;
*) fail "usage: $0 start|stop|status" ;;
esac
