#!/usr/bin/env bash
# Runs every benchmark (ferrolm, vodozemac and libolm in the same run; the key store against
# matrix-sdk-sqlite; the machine and its backup restore against matrix-sdk-crypto) and the
# callgrind instruction counts, and rewrites the results in benches/README.md between the markers.
# Usage: benches/run.sh            (about 45 minutes; run it on an idle machine)
#        BENCHES="machine backup_restore" benches/run.sh   (only those groups run; the tables
#                                  also show criterion's saved results of the others, and say so)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${FERROLM_CACHE:-$HOME/.cache/ferrolm}/target}"

all_benches="olm megolm pk store machine backup_restore"
benches="${BENCHES:-$all_benches}"
for bench in $benches; do
    cargo bench -p ferrolm-benches --bench "$bench" -- --noplot
done

table=$(python3 benches/report.py "$CARGO_TARGET_DIR" olm megolm pk)
store_table=$(python3 benches/report.py "$CARGO_TARGET_DIR" store)
backup_table=$(python3 benches/report.py "$CARGO_TARGET_DIR" backup)
machine_table=$(python3 benches/report.py "$CARGO_TARGET_DIR" machine)
instructions=$(benches/callgrind.sh)
machine="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores, $(uname -sr), $(rustc --version)"
if [ "$benches" = "$all_benches" ]; then scope="One run"; else scope="Groups \`$benches\` ran"; fi
python3 - "$table" "$machine" "$(date -u +%Y-%m-%d)" "$instructions" "$store_table" "$backup_table" "$machine_table" "$scope" <<'PY'
import re, sys
table, machine, day, instructions, store_table, backup_table, machine_table, scope = sys.argv[1:]
path = "benches/README.md"
text = open(path).read()
note = ("Wall-clock medians on this VM move by 10–20% between runs, and between the minutes of one run "
        "(the groups run one after another); where two libraries do the same work (equal instruction "
        "counts below), a ratio between 0.9× and 1.1× is that noise, not a difference.")
if scope != "One run":
    note += (" The other groups' rows are criterion's saved results from the last run that included them "
             "(an earlier day: see this file's history).")
block = (f"<!-- BEGIN RESULTS -->\n{scope} on {day}: {machine}.\n{note}\n\n### Wall-clock medians (criterion)\n\n"
         f"{table}\n\n### The key store against matrix-sdk-sqlite (criterion)\n\n{store_table}\n\n"
         f"### The machine against matrix-sdk-crypto (criterion)\n\n{machine_table}\n\n"
         f"### Backup restore against matrix-sdk-crypto (criterion)\n\n{backup_table}\n\n"
         f"### Instructions per operation (callgrind)\n\n{instructions}\n<!-- END RESULTS -->")
text = re.sub(r"<!-- BEGIN RESULTS -->.*<!-- END RESULTS -->", lambda _: block, text, flags=re.S)
open(path, "w").write(text)
PY
echo "benches/README.md updated"
