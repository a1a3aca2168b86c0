# Sourced by the scripts that fetch from Debian: debian_mirror prints the Debian archive that
# this machine's apt already uses, so that nothing here names a mirror, and a machine behind its
# own mirror or proxy keeps using it. DEBIAN_MIRROR, when set, wins.
#
# apt itself reads the sources (sources.list, *.list and deb822 *.sources): with downloaded
# package lists, the archive is the source whose Release file says Origin and Label "Debian"
# (not Debian-Security); without them, the first source of this machine's own suite (its
# VERSION_CODENAME), which -updates, -security and -backports are not.

debian_mirror() {
  if [ -n "${DEBIAN_MIRROR:-}" ]; then
    echo "${DEBIAN_MIRROR%/}"
    return 0
  fi
  local uri codename
  uri=$(apt-get indextargets --format '$(REPO_URI) $(ORIGIN) $(LABEL)' 'Created-By: Packages' 2>/dev/null |
    awk '$2 == "Debian" && $3 == "Debian" { print $1; exit }')
  if [ -z "$uri" ]; then
    codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
    uri=$(apt-get indextargets --no-release-info --format '$(REPO_URI) $(RELEASE)' 'Created-By: Packages' 2>/dev/null |
      awk -v codename="$codename" 'codename != "" && $2 == codename { print $1; exit }')
  fi
  if [ -z "$uri" ]; then
    echo "no Debian archive among this machine's apt sources: set DEBIAN_MIRROR to one" >&2
    return 1
  fi
  echo "${uri%/}"
}
