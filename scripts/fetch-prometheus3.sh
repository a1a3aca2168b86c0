#!/usr/bin/env bash
# Fetches Debian's Prometheus 3.5 LTS (`prometheus`, `promtool`) and Alertmanager 0.33
# (`prometheus-alertmanager` with amtool) from newer Debian suites than this machine's, and
# unpacks them into .tools/prometheus-3/ for the tests (harness/tools.ts
# prefers them). With them comes prometheus/client_model 0.6
# (`golang-github-prometheus-client-model-dev`, from sid) for its official
# io/prometheus/client/metrics.proto: the protobuf exposition's schema, with native histograms
# and MetricFamily.unit, which the protobuf tests compare and compile. Nothing is installed:
# apt reads a temporary sources list and its own state directory, `apt-get download` fetches
# the .deb files, `dpkg-deb -x` unpacks them. The binaries are static Go programs that need
# only libc 2.34, so they run on bookworm.
#
# Idempotent: does nothing when the unpacked binaries already report the wanted series and
# the schema of the wanted client_model is there.
# Series (upstream version prefixes) and suites can be overridden for a later move:
#   PROMETHEUS3_SERIES=3.5.  ALERTMANAGER_SERIES=0.33.  CLIENT_MODEL_SERIES=0.6.
#   PROMETHEUS3_SUITES="forky sid"
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dest=${PROMETHEUS3_DIR:-$root/.tools/prometheus-3}
prometheus_series=${PROMETHEUS3_SERIES:-3.5.}
alertmanager_series=${ALERTMANAGER_SERIES:-0.33.}
client_model_series=${CLIENT_MODEL_SERIES:-0.6.}
# forky (testing) and sid carry Prometheus 3.5, Alertmanager 0.33 and client_model 0.6.
suites=${PROMETHEUS3_SUITES:-forky sid}

# `<tool>, version 3.5.3+ds1 (branch: ...)` -> 0 when the binary exists and is of the series.
has_series() {
  local bin=$1 series=$2
  [ -x "$bin" ] || return 1
  "$bin" --version 2>&1 | head -n 1 | grep -q "version ${series//./\\.}"
}

# Where the client_model package puts the schema; harness/tools.ts names the same path.
metrics_proto=usr/share/gocode/src/github.com/prometheus/client_model/io/prometheus/client/metrics.proto

# The unpacked schema is of the wanted series (the VERSIONS line this script writes).
has_client_model() {
  [ -f "$dest/$metrics_proto" ] &&
    grep -q "^golang-github-prometheus-client-model-dev ${client_model_series//./\\.}" "$dest/VERSIONS"
}

if has_series "$dest/usr/bin/prometheus" "$prometheus_series" &&
  has_series "$dest/usr/bin/promtool" "$prometheus_series" &&
  has_series "$dest/usr/bin/prometheus-alertmanager" "$alertmanager_series" &&
  has_series "$dest/usr/bin/amtool" "$alertmanager_series" &&
  has_client_model; then
  exit 0
fi

for tool in apt-get apt-cache dpkg-deb dpkg; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "fetch-prometheus3: needs $tool (Debian's apt and dpkg)" >&2
    exit 1
  }
done

# shellcheck source=lib/other-suite-apt.sh
. "$root/scripts/lib/other-suite-apt.sh"
# shellcheck disable=SC2086 # the suites are words
other_suite_apt fetch-prometheus3 $suites

prometheus_version=$(newest_of_series prometheus "$prometheus_series")
promtool_version=$(newest_of_series promtool "$prometheus_series")
alertmanager_version=$(newest_of_series prometheus-alertmanager "$alertmanager_series")
client_model_version=$(newest_of_series golang-github-prometheus-client-model-dev "$client_model_series")
echo "fetch-prometheus3: prometheus $prometheus_version, promtool $promtool_version," \
  "prometheus-alertmanager $alertmanager_version," \
  "golang-github-prometheus-client-model-dev $client_model_version"

(
  cd "$work/debs"
  apt-get "${apt_opts[@]}" -qq download \
    "prometheus=$prometheus_version" \
    "promtool=$promtool_version" \
    "prometheus-alertmanager=$alertmanager_version" \
    "golang-github-prometheus-client-model-dev=$client_model_version"
)
for deb in "$work"/debs/*.deb; do
  dpkg-deb -x "$deb" "$work/root"
done

# The unpacked tree must run here before it replaces what was there.
for bin in prometheus promtool prometheus-alertmanager amtool; do
  "$work/root/usr/bin/$bin" --version >/dev/null 2>&1 || {
    echo "fetch-prometheus3: the unpacked $bin does not run on this machine" >&2
    exit 1
  }
done
[ -f "$work/root/$metrics_proto" ] || {
  echo "fetch-prometheus3: golang-github-prometheus-client-model-dev has no $metrics_proto" >&2
  exit 1
}
{
  echo "prometheus $prometheus_version"
  echo "promtool $promtool_version"
  echo "prometheus-alertmanager $alertmanager_version"
  echo "golang-github-prometheus-client-model-dev $client_model_version"
} >"$work/root/VERSIONS"

rm -rf "$dest"
mkdir -p "$(dirname "$dest")"
mv "$work/root" "$dest"
echo "fetch-prometheus3: unpacked into $dest:"
"$dest/usr/bin/prometheus" --version 2>&1 | head -n 1
"$dest/usr/bin/prometheus-alertmanager" --version 2>&1 | head -n 1
