# Sourced by the scripts that fetch packages from Debian suites newer than this machine's:
# apt with only a temporary sources list and state, so the machine's own sources, lists and
# cache are neither read nor changed, and nothing is installed. As root, apt would download as
# its `_apt` user, who cannot write into this private directory, so the download runs as root
# (the files are checked against the signed Release file either way). The suites come from the
# Debian archive this machine's apt uses (lib/debian-mirror.sh; DEBIAN_MIRROR overrides it).
#
# other_suite_apt <name> <suites...> reads those suites' package lists and sets:
#   work      a temporary directory, removed on exit, with debs/ and root/ to download and unpack into
#   apt_opts  the options that point apt-get and apt-cache at it
# newest_of_series <package> <series> then prints the newest version of <package> whose upstream
# version starts with <series>, or fails naming it.

# shellcheck source=debian-mirror.sh
. "$(dirname "${BASH_SOURCE[0]}")/debian-mirror.sh"

other_suite_apt() {
  apt_name=$1
  shift
  local mirror
  mirror=$(debian_mirror)
  local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  local arch suite
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/debs" "$work/root"
  arch=$(dpkg --print-architecture)
  for suite in "$@"; do
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
  echo "$apt_name: reading the package lists of: $*"
  apt-get "${apt_opts[@]}" -qq update
}

newest_of_series() {
  local package=$1 series=$2 best='' version
  while read -r version; do
    [[ ${version#*:} == "$series"* ]] || continue
    if [ -z "$best" ] || dpkg --compare-versions "$version" gt "$best"; then best=$version; fi
  done < <(apt-cache "${apt_opts[@]}" madison "$package" | awk -F'|' '{gsub(/ /, "", $2); print $2}')
  if [ -z "$best" ]; then
    echo "$apt_name: no $package ${series}x in the suites read" >&2
    return 1
  fi
  echo "$best"
}
