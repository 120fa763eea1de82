#!/usr/bin/env bash
# make man-check: the man pages of man/ against the tools of $BUILD/bin.
#  - every tool has a page man/TOOL.1 and every page of section 1 a tool;
#  - every page renders without a warning: groff -man -ww -z, and man -l with
#    man's warnings on (man-db), when man is installed;
#  - --help against the page, both ways (the rendered page, plain text): every
#    option --help lists (its option lines, which start with '-', and the
#    bracketed options of a command line) is an option entry of the page (a tag
#    line of a .TP list); every option entry of the page is in --help; and every
#    option --help names anywhere is named by the page. glow-ckpt's --help is
#    joined by glow-ckpt import --help.
# Prints each problem and "man-check: N pages, N problems"; exit 1 on a problem.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
MAN_DIR=${MAN_DIR:-man}   # the pages checked (a copy, in the tests)
problems=0 pages=0
problem() { echo "man-check: $*"; problems=$((problems + 1)); }

render() { GROFF_NO_SGR=1 groff -man -Tascii -rLL=1000n -P-bou "$1" 2>/dev/null; }
# the options of option lines and of [--opt] brackets
help_listed() {
    awk '/^ +-/ && index($0, "-") <= 9 { tag = $0; sub(/^ +/, "", tag); sub(/  .*/, "", tag)
                  n = split(tag, w, /[ ,\/=|]+/)
                  for (i = 1; i <= n; i++) if (w[i] ~ /^--?[A-Za-z][A-Za-z0-9-]*$/) print w[i]
                  next }
         { s = $0
           while (match(s, /\[--?[A-Za-z][A-Za-z0-9-]*/)) {
               print substr(s, RSTART + 1, RLENGTH - 1); s = substr(s, RSTART + RLENGTH) } }' | sort -u
}
# the options of the tag lines of a rendered page (indented 7, starting with '-')
man_tags() {
    awk '/^       -/ { tag = $0; sub(/^ +/, "", tag); sub(/  .*/, "", tag)
                       n = split(tag, w, /[ ,\/=|]+/)
                       for (i = 1; i <= n; i++) if (w[i] ~ /^--?[A-Za-z][A-Za-z0-9-]*$/) print w[i] }' | sort -u
}
# every option named anywhere: --long, or -X (one letter) standing alone
all_opts() {
    grep -oE -- '(^|[^A-Za-z0-9_-])(--[A-Za-z][A-Za-z0-9-]*|-[A-Za-z])([^A-Za-z0-9_-]|$)' |
        grep -oE -- '--?[A-Za-z][A-Za-z0-9-]*' | sort -u
}
missing() { comm -23 <(printf '%s\n' "$1" | sed '/^$/d') <(printf '%s\n' "$2" | sed '/^$/d') | tr '\n' ' '; }

for page in "$MAN_DIR"/*.[15]; do
    pages=$((pages + 1))
    w=$(groff -man -ww -z "$page" 2>&1)
    [ -z "$w" ] || problem "$page: groff warnings: $w"
    if command -v man >/dev/null; then
        w=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null)
        [ -z "$w" ] || problem "$page: man -l warnings: $w"
    fi
    case $page in *.1) ;; *) continue ;; esac
    tool=$(basename "$page" .1)
    if [ ! -x "$BUILD/bin/$tool" ]; then problem "$page: no tool $BUILD/bin/$tool"; continue; fi
    help=$("$BUILD/bin/$tool" --help 2>&1)
    [ "$tool" = glow-ckpt ] && help+=$'\n'$("$BUILD/bin/$tool" import --help 2>&1)
    text=$(render "$page")
    listed=$(help_listed <<<"$help") tags=$(man_tags <<<"$text")
    hall=$(all_opts <<<"$help") mall=$(all_opts <<<"$text")
    [ -n "$listed" ] || problem "$tool --help: no options found"
    m=$(missing "$listed" "$tags"); [ -z "$m" ] || problem "$page: options of --help without an entry in the page: $m"
    m=$(missing "$tags" "$hall"); [ -z "$m" ] || problem "$page: entries of the page that --help does not have: $m"
    m=$(missing "$hall" "$mall"); [ -z "$m" ] || problem "$page: options --help names that the page does not: $m"
done
for t in "$BUILD"/bin/*; do
    [ -x "$t" ] || continue
    [ -f "$MAN_DIR/$(basename "$t").1" ] || problem "$(basename "$t"): no man page $MAN_DIR/$(basename "$t").1"
done
echo "man-check: $pages pages, $problems problems"
[ $problems = 0 ]
