#!/bin/sh
# tests/fuzz/run.sh — build the libFuzzer targets for the transforms into
# build/fuzz/ and run them on scratch copies of tests/fuzz/corpus/* (the
# repository is never modified):
#   fuzz_soap_envelope  ${FUZZ_SECONDS:-30} s   SOAP envelopes, xml_safe, XML <-> JSON
#   fuzz_csv            ${FUZZ_CSV_SECONDS:-10} s   the streaming CSV reader (0 skips it)
#   fuzz_file_records   ${FUZZ_FILE_SECONDS:-10} s  file route readers, the json split scanner
#   fuzz_config         ${FUZZ_CONFIG_SECONDS:-5} s  config_load on a fuzzed file (errors: line, message)
#   fuzz_xmljson        ${FUZZ_XMLJSON_SECONDS:-5} s  JSON -> XML -> JSON, round trip stable
#   fuzz_http_auth      ${FUZZ_AUTH_SECONDS:-5} s   signature header parsers: nothing forged verifies
#   fuzz_template       ${FUZZ_TEMPLATE_SECONDS:-5} s  routing keys: {json.…} lookups in fuzzed bodies
#   fuzz_spool_journal  ${FUZZ_SPOOL_SECONDS:-5} s  spool recovery: torn, cut or flipped segments
# The last five link build/fuzz/libsidecar.a: every library source (all of
# adapter/, adapter/kinds/, transforms/ but main.c) built with the sanitizers.
# FUZZ_JOBS (default: nproc) compiles it in parallel. tests/fuzz/lsan.supp
# names the library leaks (not ours) that LeakSanitizer ignores.
# Exits non-zero on a crash, leak, sanitizer report or broken property; the
# reproducer is left in build/fuzz/ (crash-*, leak-*, timeout-*). Replay one:
#   build/fuzz/fuzz_soap_envelope build/fuzz/crash-<sha1>
set -eu
cd "$(dirname "$0")/../.."

OUT=build/fuzz
CC=${FUZZ_CC:-clang}
mkdir -p "$OUT"
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/fuzz.XXXXXX")
trap 'rm -rf "$SCRATCH"' EXIT INT TERM

build() { # build NAME SOURCES... (libraries from pkg-config are the same for both)
    name=$1
    shift
    # shellcheck disable=SC2046 # pkg-config output must split into words
    "$CC" -g -O1 -fno-omit-frame-pointer \
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
        -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-unused-parameter -Itransforms \
        "$@" $(pkg-config --cflags --libs libxml-2.0 jansson) -o "$OUT/$name"
}

run() { # run NAME CORPUS SECONDS [libFuzzer flags...]
    name=$1 corpus=$2 secs=$3
    shift 3
    [ "$secs" -gt 0 ] || return 0
    mkdir -p "$SCRATCH/$name"
    cp "tests/fuzz/corpus/$corpus"/* "$SCRATCH/$name/"
    echo "fuzz: running $name for ${secs}s"
    TMPDIR=$SCRATCH LSAN_OPTIONS=suppressions=$PWD/tests/fuzz/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS} \
        "$OUT/$name" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$OUT/" -print_final_stats=1 "$@" "$SCRATCH/$name"
    echo "fuzz: $name: no crash in ${secs}s"
}

# libsidecar.a: rebuilt whole each run (a minute at most), so it never goes stale.
PKGS=$(sed -n 's/^PKGS *:= *//p' Makefile) # the libraries the daemon links, as the Makefile says
LIBOBJ=$OUT/obj
rm -rf "$LIBOBJ" "$OUT/libsidecar.a"
mkdir -p "$LIBOBJ"
# shellcheck disable=SC2016,SC2086 # $0..$3 belong to the inner sh; the flags split
for src in adapter/*.c adapter/kinds/*.c transforms/*.c; do
    [ "$src" = adapter/main.c ] || echo "$src"
done | xargs -P "${FUZZ_JOBS:-$(nproc)}" -n 1 sh -c '
    "$0" -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined \
        -fno-sanitize-recover=undefined -D_GNU_SOURCE -DSIDECAR_VERSION=\"fuzz\" -Iadapter -Itransforms $1 \
        -c -o "$2/$(echo "$3" | tr / _).o" "$3"' "$CC" "$(pkg-config --cflags $PKGS)" "$LIBOBJ"
ar rcs "$OUT/libsidecar.a" "$LIBOBJ"/*.o

build_lib() { # build_lib NAME SOURCE: a target linked against libsidecar.a
    # shellcheck disable=SC2086,SC2046 # pkg-config output must split into words
    "$CC" -g -O1 -fno-omit-frame-pointer \
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
        -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-unused-parameter -Iadapter -Itransforms \
        $(pkg-config --cflags $PKGS) "$2" "$OUT/libsidecar.a" \
        $(pkg-config --libs $PKGS) -ljq -lpthread -lm -o "$OUT/$1"
}

build fuzz_soap_envelope tests/fuzz/fuzz_soap_envelope.c transforms/xml_safe.c \
    transforms/xml_prescan.c transforms/xml_standalone.c transforms/xmljson.c \
    transforms/soap_envelope.c
build fuzz_csv tests/fuzz/fuzz_csv.c transforms/csv.c
# shellcheck disable=SC2046
build fuzz_file_records tests/fuzz/fuzz_file_records.c adapter/kinds/file_records.c adapter/util.c \
    adapter/log.c transforms/csv.c transforms/xml_safe.c transforms/xml_prescan.c -Iadapter \
    $(pkg-config --cflags --libs openssl)
build_lib fuzz_config tests/fuzz/fuzz_config.c
build_lib fuzz_xmljson tests/fuzz/fuzz_xmljson.c
build_lib fuzz_http_auth tests/fuzz/fuzz_http_auth.c
build_lib fuzz_template tests/fuzz/fuzz_template.c
build_lib fuzz_spool_journal tests/fuzz/fuzz_spool_journal.c

run fuzz_soap_envelope soap "${FUZZ_SECONDS:-30}" -dict=tests/fuzz/soap.dict
run fuzz_csv csv "${FUZZ_CSV_SECONDS:-10}"
run fuzz_file_records json_split "${FUZZ_FILE_SECONDS:-10}"
run fuzz_config config "${FUZZ_CONFIG_SECONDS:-5}"
run fuzz_xmljson xmljson "${FUZZ_XMLJSON_SECONDS:-5}"
run fuzz_http_auth http_auth "${FUZZ_AUTH_SECONDS:-5}"
run fuzz_template template "${FUZZ_TEMPLATE_SECONDS:-5}"
run fuzz_spool_journal spool "${FUZZ_SPOOL_SECONDS:-5}"
