#!/usr/bin/env bash
# Builds, from Debian's packages and this repository's own files, the images that the Dockerfile
# and docker-compose.yml start from, and tags them with exactly the names they use, for a Docker
# engine that reaches no image registry:
#
#   node:24.21.0-trixie-slim   (the Dockerfile's NODE_IMAGE)  a Debian trixie minbase root, the
#                              Node binary the `node` npm package brought into node_modules, npm
#                              from the npm registry (the release that Node bundles), user `node`
#                              (uid 1000), and the official image's entrypoint behaviour
#   prom/prometheus:v3.5.3     (compose)  the same root, Debian's prometheus/promtool 3.5.3 from
#                              .tools/prometheus-3 (scripts/fetch-prometheus3.sh), user nobody
#   prom/alertmanager:v0.33.1  (compose)  the same root, Debian's prometheus-alertmanager 0.33.1
#
# The tags are read from the Dockerfile and docker-compose.yml, and each binary must report the
# version its tag names. Grafana (grafana/grafana) has no Debian package: it is not built, and the
# container tier runs the stack without it.
#
# Images stay in the engine's store between runs: one that is present is skipped (say so), unless
# REBUILD=1; `docker image rm` of the tags above (and of fastify-pm2-cluster-metrics/debian) removes
# them. The Debian root and the node image carry no labels of their own, since every image built
# FROM them (the project's) would inherit them; the Prometheus and Alertmanager stand-ins say what
# they are in org.opencontainers.image.description.
#
# The stand-in node image trusts what this machine trusts: the CA certificates in
# /usr/local/share/ca-certificates (Debian's place for local CAs) are added to its bundle, and
# when there are such certificates, the image's npm reads that bundle (`cafile`). Without that, `npm ci`
# in `docker build` fails where a TLS-inspecting proxy stands between the machine and the npm
# registry (SELF_SIGNED_CERT_IN_CHAIN).
#
# Needs root (debootstrap), a running Docker engine, debootstrap, `npm ci` done.
# Settings: DOCKER (client, default docker), DEBIAN_MIRROR (default: the Debian archive this
# machine's apt uses, scripts/lib/debian-mirror.sh), NPM_VERSION (default: the npm that
# the Node release bundles, 11.19.0 for 24.21.0), REBUILD=1.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
docker=${DOCKER:-docker}
# shellcheck source=lib/debian-mirror.sh
. "$root/scripts/lib/debian-mirror.sh"
npm_version=${NPM_VERSION:-11.19.0}
cache=$root/.tools/base-images
say() { echo "build-base-images: $*"; }
fail() {
  echo "build-base-images: $*" >&2
  exit 1
}

node_tag=$(sed -n 's/^ARG NODE_IMAGE=//p' "$root/Dockerfile" | head -n 1)
prometheus_tag=$(sed -n 's/^ *image: *\(prom\/prometheus:[^ ]*\) *$/\1/p' "$root/docker-compose.yml" | head -n 1)
alertmanager_tag=$(sed -n 's/^ *image: *\(prom\/alertmanager:[^ ]*\) *$/\1/p' "$root/docker-compose.yml" | head -n 1)
grafana_tag=$(sed -n 's/^ *image: *\(grafana\/grafana:[^ ]*\) *$/\1/p' "$root/docker-compose.yml" | head -n 1)
[ -n "$node_tag" ] || fail "no ARG NODE_IMAGE=... in the Dockerfile"
[ -n "$prometheus_tag" ] || fail "no prom/prometheus image in docker-compose.yml"
[ -n "$alertmanager_tag" ] || fail "no prom/alertmanager image in docker-compose.yml"

# node:24.21.0-trixie-slim -> 24.21.0 and trixie
[[ $node_tag =~ ^node:([0-9]+\.[0-9]+\.[0-9]+)-([a-z]+)(-slim)?$ ]] ||
  fail "cannot read a Node version and Debian suite from $node_tag"
node_version=${BASH_REMATCH[1]}
suite=${BASH_REMATCH[2]}
prometheus_version=${prometheus_tag##*:v}
alertmanager_version=${alertmanager_tag##*:v}
debian_tag=fastify-pm2-cluster-metrics/debian:$suite-minbase

"$docker" version --format '{{.Server.Version}}' >/dev/null 2>&1 ||
  fail "no Docker engine answers ($docker version); start one first (scripts/docker-engine.sh start)"

present() { [ "${REBUILD:-0}" != 1 ] && "$docker" image inspect "$1" >/dev/null 2>&1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# ---- the Debian root: debootstrap's minbase, busybox (wget for the compose health checks) and
# ca-certificates, without docs, man pages, locales and apt lists ----
if present "$debian_tag"; then
  say "$debian_tag is present, not rebuilt"
else
  [ "$(id -u)" -eq 0 ] || fail "debootstrap needs root"
  command -v debootstrap >/dev/null 2>&1 || fail "needs debootstrap (apt-get install debootstrap)"
  mirror=$(debian_mirror) || fail "no Debian mirror to debootstrap from"
  say "debootstrap $suite (minbase) from $mirror"
  started=$(date +%s)
  nice -n 10 debootstrap --variant=minbase --include=busybox,ca-certificates \
    "$suite" "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || {
    tail -n 20 "$work/debootstrap.log" >&2
    fail "debootstrap $suite failed"
  }
  rm -rf "$work"/rootfs/usr/share/doc/* "$work"/rootfs/usr/share/man/* \
    "$work"/rootfs/usr/share/locale/* "$work"/rootfs/var/lib/apt/lists/* \
    "$work"/rootfs/var/cache/apt/*.bin "$work"/rootfs/var/cache/apt/archives/*.deb
  tar --numeric-owner -C "$work/rootfs" -c . |
    "$docker" import --change 'CMD ["bash"]' - "$debian_tag" >/dev/null
  rm -rf "$work/rootfs"
  say "built $debian_tag in $(($(date +%s) - started)) s"
fi

build() { # tag, context directory
  local started
  started=$(date +%s)
  DOCKER_BUILDKIT=0 nice -n 10 "$docker" build --quiet --tag "$1" "$2" >/dev/null 2>"$work/build.log" || {
    cat "$work/build.log" >&2
    fail "building $1 failed"
  }
  say "built $1 in $(($(date +%s) - started)) s"
}

# ---- node ----
if present "$node_tag"; then
  say "$node_tag is present, not rebuilt"
else
  # The `node` package's own binary (its install script puts the platform's build there); the
  # platform package under it may be pruned by a later `npm install`.
  node_bin=$(readlink -f "$root/node_modules/node/bin/node")
  [ -x "$node_bin" ] || fail "no Node binary at $node_bin: run npm ci first"
  [ "$("$node_bin" --version)" = "v$node_version" ] ||
    fail "$node_bin is $("$node_bin" --version), $node_tag wants v$node_version"
  mkdir -p "$cache" "$work/node/local-ca"
  if [ ! -s "$cache/npm-$npm_version.tgz" ]; then
    (cd "$cache" && npm pack --silent "npm@$npm_version" >/dev/null)
  fi
  cp "$node_bin" "$work/node/node"
  tar -xzf "$cache/npm-$npm_version.tgz" -C "$work/node" # -> package/
  cp /usr/local/share/ca-certificates/*.crt "$work/node/local-ca/" 2>/dev/null || true
  # With local CAs, the image's npm reads the bundle they are added to. Decided by the files, not
  # by `npm config get cafile`: under node_modules/.bin's Node, npm looks for its global config
  # beside that Node and finds none.
  if compgen -G "$work/node/local-ca/*.crt" >/dev/null; then
    echo "cafile=/etc/ssl/certs/ca-certificates.crt" >"$work/node/npmrc"
  else
    : >"$work/node/npmrc"
  fi
  # The official image's entrypoint: a first argument that is an option, or no command, runs node.
  cat >"$work/node/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
set -e
if [ "${1#-}" != "${1}" ] || [ -z "$(command -v "${1}")" ] || { [ -f "${1}" ] && ! [ -x "${1}" ]; }; then
  set -- node "$@"
fi
exec "$@"
EOF
  cat >"$work/node/Dockerfile" <<EOF
FROM $debian_tag
COPY node /usr/local/bin/node
COPY package /usr/local/lib/node_modules/npm
COPY local-ca/ /usr/local/share/ca-certificates/
COPY npmrc /usr/local/etc/npmrc
COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN chmod 0755 /usr/local/bin/node /usr/local/bin/docker-entrypoint.sh \\
 && ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \\
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \\
 && groupadd --gid 1000 node && useradd --uid 1000 --gid node --shell /bin/bash --create-home node \\
 && update-ca-certificates >/dev/null \\
 && node --version && npm --version
ENV NODE_VERSION=$node_version
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["node"]
EOF
  build "$node_tag" "$work/node"
fi

# ---- Prometheus and Alertmanager: the binaries the tests run ----
tools=$root/.tools/prometheus-3
if ! present "$prometheus_tag" || ! present "$alertmanager_tag"; then
  bash "$root/scripts/fetch-prometheus3.sh"
fi
version_of() { "$1" --version 2>&1 | sed -n '1s/.* version \([0-9][0-9.]*\).*/\1/p'; }

if present "$prometheus_tag"; then
  say "$prometheus_tag is present, not rebuilt"
else
  [ "$(version_of "$tools/usr/bin/prometheus")" = "$prometheus_version" ] ||
    fail "$tools/usr/bin/prometheus is not $prometheus_version"
  mkdir -p "$work/prometheus"
  cp "$tools/usr/bin/prometheus" "$tools/usr/bin/promtool" "$work/prometheus/"
  cp -r "$tools/usr/share/prometheus/web" "$work/prometheus/web"
  cat >"$work/prometheus/Dockerfile" <<EOF
FROM $debian_tag
LABEL org.opencontainers.image.description="Debian's Prometheus $prometheus_version on Debian $suite minbase; local stand-in for $prometheus_tag"
COPY prometheus promtool /bin/
COPY web /usr/share/prometheus/web
RUN ln -s /bin/busybox /usr/local/bin/wget \\
 && mkdir -p /etc/prometheus /prometheus && chown nobody:nogroup /etc/prometheus /prometheus
USER nobody
EXPOSE 9090
VOLUME ["/prometheus"]
WORKDIR /prometheus
ENTRYPOINT ["/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
EOF
  build "$prometheus_tag" "$work/prometheus"
fi

if present "$alertmanager_tag"; then
  say "$alertmanager_tag is present, not rebuilt"
else
  [ "$(version_of "$tools/usr/bin/prometheus-alertmanager")" = "$alertmanager_version" ] ||
    fail "$tools/usr/bin/prometheus-alertmanager is not $alertmanager_version"
  mkdir -p "$work/alertmanager"
  cp "$tools/usr/bin/prometheus-alertmanager" "$work/alertmanager/alertmanager"
  cp "$tools/usr/bin/amtool" "$work/alertmanager/"
  # Debian's Alertmanager reads its notification templates from here, not from the binary.
  cp -r "$tools/usr/share/prometheus/alertmanager" "$work/alertmanager/share"
  cat >"$work/alertmanager/Dockerfile" <<EOF
FROM $debian_tag
LABEL org.opencontainers.image.description="Debian's Alertmanager $alertmanager_version on Debian $suite minbase; local stand-in for $alertmanager_tag"
COPY alertmanager amtool /bin/
COPY share /usr/share/prometheus/alertmanager
RUN ln -s /bin/busybox /usr/local/bin/wget \\
 && mkdir -p /etc/alertmanager /alertmanager && chown nobody:nogroup /etc/alertmanager /alertmanager
USER nobody
EXPOSE 9093
VOLUME ["/alertmanager"]
WORKDIR /alertmanager
ENTRYPOINT ["/bin/alertmanager"]
CMD ["--config.file=/etc/alertmanager/alertmanager.yml", "--storage.path=/alertmanager"]
EOF
  build "$alertmanager_tag" "$work/alertmanager"
fi

if [ -n "$grafana_tag" ] && ! "$docker" image inspect "$grafana_tag" >/dev/null 2>&1; then
  say "$grafana_tag: not built (no Debian package, no registry): the stack runs here without Grafana"
fi
