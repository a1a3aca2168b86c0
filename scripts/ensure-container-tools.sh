#!/usr/bin/env bash
# What the container tier needs besides the test tools: Debian's Docker engine and debootstrap
# (this machine's suite, installed with apt-get when run as root; otherwise it says what to
# install and stops), and Docker Compose v2, which only newer Debian suites carry: the newest
# `docker-compose` 2.x of sid is downloaded with `apt-get download` into a temporary apt state and
# unpacked with `dpkg-deb -x` into .tools/compose-2/ (ignored by git), never installed; the
# machine's apt sources are untouched. The binary is a static Go program (libc only).
#
# Idempotent: installs nothing that is there, and keeps an unpacked Compose of the wanted series.
#   COMPOSE_SERIES=2.  COMPOSE_SUITES=sid  DEBIAN_MIRROR=...
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dest=${COMPOSE2_DIR:-$root/.tools/compose-2}
series=${COMPOSE_SERIES:-2.}
suites=${COMPOSE_SUITES:-sid}
compose=$dest/usr/libexec/docker/cli-plugins/docker-compose

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing container tools: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # No start by the package (no init system here): scripts/docker-engine.sh starts the engine.
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "the container tier needs these Debian packages: ${missing[*]}" >&2
    echo "install them with: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

if [ -x "$compose" ] && "$compose" version --short 2>/dev/null | grep -q "^v\?${series//./\\.}"; then
  exit 0
fi

# shellcheck source=lib/other-suite-apt.sh
. "$root/scripts/lib/other-suite-apt.sh"
# shellcheck disable=SC2086 # the suites are words
other_suite_apt ensure-container-tools $suites
best=$(newest_of_series docker-compose "$series")
(cd "$work/debs" && apt-get "${apt_opts[@]}" -qq download "docker-compose=$best")
dpkg-deb -x "$work"/debs/*.deb "$work/root"
"$work/root/usr/libexec/docker/cli-plugins/docker-compose" version >/dev/null 2>&1 || {
  echo "ensure-container-tools: the unpacked docker-compose does not run on this machine" >&2
  exit 1
}
echo "docker-compose $best" >"$work/root/VERSIONS"
rm -rf "$dest"
mkdir -p "$(dirname "$dest")"
mv "$work/root" "$dest"
echo "ensure-container-tools: unpacked docker-compose $best into $dest"
