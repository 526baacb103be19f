#!/bin/sh
# tests/fuzz/run.sh — build the libFuzzer targets for the transforms into
# build/fuzz/ and run them on scratch copies of tests/fuzz/corpus/* (the
# repository is never modified):
#   fuzz_soap_envelope  ${FUZZ_SECONDS:-30} s   SOAP envelopes, xml_safe, XML <-> JSON
#   fuzz_csv            ${FUZZ_CSV_SECONDS:-10} s   the streaming CSV reader (0 skips it)
#   fuzz_file_records   ${FUZZ_FILE_SECONDS:-10} s  file route readers, the json split scanner
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
    "$OUT/$name" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$OUT/" -print_final_stats=1 "$@" "$SCRATCH/$name"
    echo "fuzz: $name: no crash in ${secs}s"
}

build fuzz_soap_envelope tests/fuzz/fuzz_soap_envelope.c transforms/xml_safe.c \
    transforms/xml_prescan.c transforms/xml_standalone.c transforms/xmljson.c \
    transforms/soap_envelope.c
build fuzz_csv tests/fuzz/fuzz_csv.c transforms/csv.c
# shellcheck disable=SC2046
build fuzz_file_records tests/fuzz/fuzz_file_records.c adapter/kinds/file_records.c adapter/util.c \
    adapter/log.c transforms/csv.c transforms/xml_safe.c transforms/xml_prescan.c -Iadapter \
    $(pkg-config --cflags --libs openssl)

run fuzz_soap_envelope soap "${FUZZ_SECONDS:-30}" -dict=tests/fuzz/soap.dict
run fuzz_csv csv "${FUZZ_CSV_SECONDS:-10}"
run fuzz_file_records json_split "${FUZZ_FILE_SECONDS:-10}"
