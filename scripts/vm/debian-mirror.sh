#!/bin/bash
# Prints the Debian mirror apt itself uses for suite $1: the first plain "deb" source of that suite
# in apt's configuration (deb822 .sources first, then the one-line format), never a hard-coded
# host. Prints nothing when there is none. Used by fresh-debian.sh, ../nova-trixie.sh and
# ../real-hosts.sh; build-debian-image.sh keeps its own copy, because its cache key hashes its
# text and an edit would rebuild every tier-2 image.
set -euo pipefail
suite=$1
mirror=$(
  cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk -v suite="$suite" '
    function flush() {
      if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " suite " ") && uris != "" && !done) {
        split(uris, u, " "); print u[1]; done = 1
      }
      types = ""; suites = ""; uris = ""
    }
    /^[[:space:]]*$/ { flush(); next }
    /^Types:/ { sub(/^Types:[[:space:]]*/, ""); types = $0 }
    /^Suites:/ { sub(/^Suites:[[:space:]]*/, ""); suites = $0 }
    /^URIs:/ { sub(/^URIs:[[:space:]]*/, ""); uris = $0 }
    END { flush() }'
)
if [ -z "$mirror" ]; then
  mirror=$(awk -v suite="$suite" '$1 == "deb" && $3 == suite { print $2; exit }' \
    /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)
fi
echo "$mirror"
