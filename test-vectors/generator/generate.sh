#!/bin/sh
# Regenerates the known-answer test vectors in test-vectors/ from libolm 3.2.13.
#
#   test-vectors/generator/generate.sh              write test-vectors/*.json
#   test-vectors/generator/generate.sh --check      regenerate into a temporary directory and
#                                                   check the files in test-vectors/ are identical
#   test-vectors/generator/generate.sh --probes DIR also write DIR/probes.json: libolm behaviour
#                                                   ferrolm deliberately does not reproduce
#
# Needs Debian's libolm3 (3.2.13), python3-olm (the `_libolm` cffi module) and
# python3-cryptography, run by Debian's own /usr/bin/python3 (a pyenv or virtualenv python on
# PATH does not see python3-olm).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
out=$(dirname "$here")
python=/usr/bin/python3
export PYTHONDONTWRITEBYTECODE=1

if ! "$python" -c 'import _libolm, cryptography' 2>/dev/null; then
    echo "generate.sh: needs libolm3, python3-olm and python3-cryptography for $python" >&2
    echo "  (apt-get install libolm3 python3-olm python3-cryptography)" >&2
    exit 1
fi

case "${1:-}" in
    "")
        "$python" "$here/generate.py" "$out"
        ;;
    --probes)
        "$python" "$here/generate.py" "$out" --probes "${2:?usage: generate.sh --probes DIR}"
        ;;
    --check)
        tmp=$(mktemp -d)
        trap 'rm -rf "$tmp"' EXIT
        "$python" "$here/generate.py" "$tmp" >/dev/null
        status=0
        for file in "$tmp"/*.json "$out"/*.json; do
            name=$(basename "$file")
            if ! cmp -s "$tmp/$name" "$out/$name"; then
                echo "generate.sh: $name differs from a fresh regeneration" >&2
                status=1
            fi
        done
        if [ "$status" -eq 0 ]; then
            echo "generate.sh: every file in test-vectors/ is byte-identical to a fresh regeneration"
        fi
        exit "$status"
        ;;
    *)
        echo "usage: generate.sh [--check | --probes DIR]" >&2
        exit 2
        ;;
esac
