#!/usr/bin/env bash
# Installs the Debian packages of the real servers that integration tests start on loopback
# (nats-server, victoria-metrics, influxdb). Does nothing when they are present or when
# not root (the tests that need a missing server then fail with a message naming it).
set -euo pipefail
packages=()
for pkg in "$@"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || packages+=("$pkg")
done
if [ ${#packages[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "missing packages (install as root): ${packages[*]}" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${packages[@]}"
