#!/bin/sh
# The Debian packages amqp-sidecar needs to build, test, benchmark and package.
#   tests/deps.sh check     exit 0 when all are installed
#   tests/deps.sh install   apt-get install what is missing (sudo when not root)
set -eu
BUILD="build-essential pkg-config librabbitmq-dev libjansson-dev libconfig-dev libssl-dev
       libmicrohttpd-dev libgnutls28-dev libcurl4-openssl-dev libxml2-dev libjq-dev libsystemd-dev
       libcmocka-dev"
TEST="rabbitmq-server amqp-tools python3 python3-pika python3-requests python3-zeep python3-spyne
      python3-pytest python3-prometheus-client clang libclang-rt-14-dev curl procps openssl
      valgrind man-db systemd chromium fonts-dejavu-core prometheus"
# chromium renders the status page in tests/e2e/test_status_page.py; prometheus brings promtool.
EXTRA="wrk debhelper lintian fakeroot dpkg-dev groff-base"
ALL="$BUILD $TEST $EXTRA"

missing() {
    for p in $ALL; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' || echo "$p"
    done
}

case "${1:-check}" in
check)
    m=$(missing)
    [ -z "$m" ] && exit 0
    echo "missing packages:" $m >&2
    exit 1 ;;
install)
    m=$(missing)
    [ -z "$m" ] && { echo "deps: all packages installed"; exit 0; }
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    echo "deps: installing" $m
    $SUDO apt-get update -q
    # rabbitmq-server's postinst starts a system broker; the tests start their own.
    RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $m
    # Leave no system broker running: its epmd/port would only confuse a private one.
    # prometheus is here for promtool (the alert rules' checks): no server either.
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        $SUDO systemctl disable --now rabbitmq-server >/dev/null 2>&1 || true
        $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
    fi
    ;;
*) echo "usage: $0 check|install" >&2; exit 2 ;;
esac
