#!/usr/bin/env bash
# Gives ferrolm's Kotlin exceptions their human message. Usage: patch-messages.sh FILE.kt
#
# uniffi 0.31's Kotlin generator makes `message` of an error with fields a dump of those
# fields ("expected=32, got=31") and of one without fields an empty string, and has no option
# to use the Rust `Display` instead. Every ferrolm error exports that `Display` as the method
# `describe()`, so this rewrites each variant's generated getter
#     override val message
#         get() = "…fields…"
# into `get() = describe()`: `e.message` is then the same text as in every other language.
# Only ferrolm's own errors are touched (a getter inside a `Ferrolm…Exception` variant); the
# edit must apply to every variant, or the script fails and leaves the file unchanged.
set -euo pipefail
file=$1
variants=$(grep -cE '^ *\) : Ferrolm[A-Za-z]+Exception\(\) \{$' "$file" || true)
tmp=$file.tmp.$$
perl -0777 -pe '
    $n = s/(\) : Ferrolm[A-Za-z]+Exception\(\) \{\n *override val message)\n( *)get\(\) = "[^"\n]*"\n/$1: String\n$2get() = describe()\n/g;
    END { print STDERR "patched=$n\n" }
' "$file" >"$tmp" 2>"$tmp.count"
patched=$(sed -n 's/^patched=//p' "$tmp.count")
rm -f "$tmp.count"
if [ "$variants" -eq 0 ] || [ "$patched" != "$variants" ]; then
    rm -f "$tmp"
    echo "patch-messages.sh: $patched of $variants error variants patched in $file" >&2
    exit 1
fi
mv "$tmp" "$file"
echo "patch-messages.sh: $patched error variants now take their message from describe()"
