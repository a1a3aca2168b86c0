#!/usr/bin/env bash
# The container tier (test/containers/): installs what it needs (scripts/ensure-container-tools.sh),
# starts a Docker engine unless one runs (scripts/docker-engine.sh), builds the base images from
# Debian's packages unless present (scripts/build-base-images.sh), runs the tier's tests one file
# at a time, and stops the engine again if it started it.
#
# CONTAINER_TIER says what happens when no engine can be had:
#   required  the tier fails (exit 1). The default of `npm run test:containers`: whoever asks
#             for the tier by name must not pass without it.
#   auto      the default of `npm test` (CI included): the tier says loudly that it did not run
#             and why, reports each of its tests as a todo naming that reason, and exits 0, so a
#             machine whose kernel or privileges cannot run an engine still runs every other tier.
#   off       the tier does not run, and says so in the same way.
# Everything else (a base image or a test that fails) fails the tier in every mode.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
# The project's Node 24 (the `node` dev dependency), as inside npm scripts.
export PATH="$root/node_modules/.bin:$PATH"
if [ -n "${CONTAINER_TIER:-}" ]; then
  mode=$CONTAINER_TIER
elif [ "${1:-}" = --auto ]; then
  mode=auto
else
  mode=required
fi
case "$mode" in required | auto | off) ;; *)
  echo "CONTAINER_TIER must be required, auto or off, not '$mode'" >&2
  exit 1
  ;;
esac

files=$(find test/containers -name '*.test.ts' | sort)
started_at=$(date +%s)

not_run() { # reason
  local reason=$1
  {
    echo
    echo "############################################################################"
    echo "#  CONTAINER TIER NOT RUN: $reason"
    echo "#  Its checks (image build, health, every worker in /metrics, Prometheus up per"
    echo "#  replica, stop, exit 78, read-only root, memory, loopback ports) did not run."
    echo "############################################################################"
    echo
  } >&2
  if [ "$mode" = required ]; then
    echo "container tier: required (CONTAINER_TIER=required, CI or npm run test:containers): failing" >&2
    exit 1
  fi
  # The runner lists each test as a todo naming the reason: the summary counts them.
  # shellcheck disable=SC2086
  CONTAINER_TIER_NOT_RUN="$reason" node --import tsx --test --test-concurrency=1 $files
  exit $?
}

[ "$mode" = off ] && not_run "turned off (CONTAINER_TIER=off)"

if ! bash scripts/ensure-container-tools.sh; then
  not_run "the tools it needs could not be installed (Docker engine, debootstrap, Compose v2)"
fi
if ! engine=$(bash scripts/docker-engine.sh start 2>&1); then
  echo "$engine" >&2
  not_run "no Docker engine could be started here: $(echo "$engine" | tail -n 1)"
fi
echo "$engine"

# Every compose project and container of this run is named ctier-<run>-...: what a test that
# was interrupted or crashed left behind is found by that prefix and removed, and nothing of
# another run on the same engine is touched.
run=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
export CONTAINER_TIER_RUN=$run
# shellcheck disable=SC2317 # called by the EXIT trap
remove_leftovers() {
  local prefix="ctier-$run-" ids
  ids=$(docker ps -a --filter label=com.docker.compose.project --format '{{.ID}} {{.Label "com.docker.compose.project"}}' |
    awk -v p="$prefix" 'index($2, p) == 1 { print $1 }')
  ids+=" "$(docker ps -a --filter label=fastify-pm2-cluster-metrics.container-tier --format '{{.ID}} {{.Label "fastify-pm2-cluster-metrics.container-tier"}}' |
    awk -v p="$prefix" 'index($2, p) == 1 { print $1 }')
  # shellcheck disable=SC2086
  if [ -n "${ids// /}" ]; then docker rm -f --volumes $ids >/dev/null; fi
  for kind in network volume; do
    docker "$kind" ls --filter label=com.docker.compose.project --format '{{.Name}} {{.Label "com.docker.compose.project"}}' |
      awk -v p="$prefix" 'index($2, p) == 1 { print $1 }' | xargs -r docker "$kind" rm >/dev/null
  done
}
# shellcheck disable=SC2317 # the EXIT trap
on_exit() {
  remove_leftovers || true
  bash "$root/scripts/docker-engine.sh" stop
}
trap on_exit EXIT
trap 'kill -TERM "${tests:-}" 2>/dev/null; wait "${tests:-}" 2>/dev/null; exit 143' TERM
trap 'kill -INT "${tests:-}" 2>/dev/null; wait "${tests:-}" 2>/dev/null; exit 130' INT
if ! bash scripts/build-base-images.sh; then
  echo "container tier: the base images could not be built" >&2
  exit 1
fi
tests_at=$(date +%s)
status=0
# One file at a time: both run containers that publish the same host ports. In the background
# with `wait`, so that a TERM or INT reaches this script at once.
# shellcheck disable=SC2086
node --import tsx --test --test-concurrency=1 --test-timeout=900000 --test-force-exit $files &
tests=$!
wait "$tests" || status=$?
tests=''
# Each run's build gives the image a new config (its compose project label): the previous one,
# untagged now, shares its layers and is removed.
docker image prune --force --filter label=com.docker.compose.service=webapp >/dev/null || true
now=$(date +%s)
echo "container tier: $((now - started_at)) s in all, of which tests $((now - tests_at)) s"
exit $status
