#!/bin/sh
# build-deb.sh — `make deb`: build build/amqp-sidecar_<version>_<arch>.deb.
#
# Builds from a copy of the working tree (what is on disk now, including
# configs/ as it is, minus build/ and .git/) in a temporary directory with
# packaging/debian/ placed at its top, so the repository is never touched.
# The version is the VERSION file's; debian/changelog is written from it.
# Then lintian checks the .deb (when installed; LINTIAN=0 skips it): errors
# fail the build, warnings are printed (packaging/README.md explains any).
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)
version=$(cat VERSION)
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
deb="amqp-sidecar_${version}_${arch}.deb"

for tool in dpkg-buildpackage dh fakeroot; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "build-deb: $tool is missing; run \`make deps\` (debhelper, dpkg-dev, fakeroot)" >&2
        exit 1
    }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/amqp-sidecar-deb.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
src="$tmp/amqp-sidecar-$version"
mkdir -p "$src"
tar -C "$root" --exclude=./build --exclude=./.git --exclude=__pycache__ \
    --exclude=.pytest_cache -cf - . | tar -C "$src" -xf -
rm -rf "$src/debian"
cp -R packaging/debian "$src/debian"

# The changelog's date is the last commit's (reproducible), or now outside git.
when=$(git -C "$root" log -1 --format=%cD 2>/dev/null || date -R)
cat >"$src/debian/changelog" <<CHANGELOG
amqp-sidecar ($version) unstable; urgency=medium

  * Release $version (see the repository's history).

 -- amqp-sidecar maintainers <amqp-sidecar@example.org>  $when
CHANGELOG

echo "build-deb: building $deb in $tmp"
if ! (cd "$src" && dpkg-buildpackage -us -uc -b -j"$(nproc)") >"$tmp/build.log" 2>&1; then
    tail -n 60 "$tmp/build.log" >&2
    echo "build-deb: dpkg-buildpackage failed (above: the end of its log)" >&2
    exit 1
fi
mkdir -p build
cp "$tmp/$deb" "build/$deb"
echo "build-deb: build/$deb"

if [ "${LINTIAN:-1}" != 0 ] && command -v lintian >/dev/null 2>&1; then
    lintian --fail-on error --info "build/$deb" || {
        echo "build-deb: lintian found errors" >&2
        exit 1
    }
    echo "build-deb: lintian: no errors"
fi
