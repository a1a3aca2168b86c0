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
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
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

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/debs" "$work/root"
arch=$(dpkg --print-architecture)
for suite in $suites; do
  echo "deb [arch=$arch signed-by=$keyring] $mirror $suite main"
done >"$work/sources.list"
apt_opts=(
  -o "Dir::Etc::sourcelist=$work/sources.list"
  -o "Dir::Etc::sourceparts=-"
  -o "Dir::State::Lists=$work/lists"
  -o "Dir::Cache=$work/cache"
  -o "APT::Sandbox::User=root"
  -o "Debug::NoLocking=1"
)
echo "ensure-container-tools: reading the package lists of: $suites"
apt-get "${apt_opts[@]}" -qq update
best=''
while read -r version; do
  [[ ${version#*:} == "$series"* ]] || continue
  if [ -z "$best" ] || dpkg --compare-versions "$version" gt "$best"; then best=$version; fi
done < <(apt-cache "${apt_opts[@]}" madison docker-compose | awk -F'|' '{gsub(/ /, "", $2); print $2}')
[ -n "$best" ] || {
  echo "ensure-container-tools: no docker-compose ${series}x in Debian $suites" >&2
  exit 1
}
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
