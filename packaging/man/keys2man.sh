#!/bin/sh
# keys2man.sh — render a man page template, filling @KEYS@ with the config
# reference that `amqp-sidecar keys` prints (Markdown tables) as troff, and
# @VERSION@ / @DATE@ from the arguments. The key tables in the code are the
# one source: this page cannot drift from what `check` accepts.
#   keys2man.sh BINARY VERSION TEMPLATE > page
# Non-ASCII text goes through preconv (groff-base) so any man(1) renders it.
set -eu
bin=$1 version=$2 template=$3
date=$(date -u -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}" +%Y-%m-%d)

keys_troff() {
    "$bin" keys --markdown | awk '
        function esc(s) {                      # troff-safe text
            gsub(/\\/, "\\e", s)
            gsub(/`/, "", s)
            gsub(/\*\*/, "", s)
            gsub(/ \\e\| /, " | ", s)          # Markdown-escaped | in choices
            return s
        }
        function field(s) { sub(/^ +/, "", s); sub(/ +$/, "", s); return s }
        /^#### / { title = substr($0, 6); print ".SS \"" esc(title) "\""; next }
        /^\| key \|/ || /^\|---/ { next }
        /^\| / {
            line = substr($0, 3, length($0) - 4)
            # split on " | " that is not the escaped " \| " of a choice list
            gsub(/ \\\| /, "\001", line)
            n = split(line, f, / \| /)
            for (i = 1; i <= n; i++) { gsub(/\001/, " | ", f[i]); f[i] = field(f[i]) }
            key = esc(f[1]); type = esc(f[2]); dflt = esc(f[3]); doc = esc(f[4])
            print ".TP"
            if (dflt == "required")
                print "\\fB" key "\\fR (\\fI" type "\\fR, \\fBrequired\\fR)"
            else if (dflt == "\342\200\223" || dflt == "")
                print "\\fB" key "\\fR (\\fI" type "\\fR)"
            else
                print "\\fB" key "\\fR (\\fI" type "\\fR, default \\fB" dflt "\\fR)"
            if (doc ~ /^[.\047]/) doc = "\\&" doc
            print doc
            next
        }'
}

keys=$(mktemp)
trap 'rm -f "$keys"' EXIT
keys_troff >"$keys"
awk -v version="$version" -v date="$date" -v keys="$keys" '
    /^@KEYS@$/ { while ((getline l < keys) > 0) print l; next }
    { gsub(/@VERSION@/, version); gsub(/@DATE@/, date); print }
' "$template" | preconv -e utf-8 | sed '/^\.lf /d'
