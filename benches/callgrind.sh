#!/usr/bin/env bash
# Instruction counts per operation under callgrind (valgrind), for ferrolm, vodozemac and
# libolm: figures that do not move with machine load. Prints a Markdown table.
# Usage: benches/callgrind.sh [OPERATION:N ...]   (no arguments: every operation)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${FERROLM_CACHE:-$HOME/.cache/ferrolm}/target}"
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
cargo build --quiet --release -p ferrolm-benches --bin ferrolm-ops
ops="$CARGO_TARGET_DIR/release/ferrolm-ops"

count() { # implementation operation n -> instructions per operation
    local out
    out=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null --collect-atstart=no \
        --toggle-collect='*measured*' "$ops" "$1" "$2" "$3" 2>&1 >/dev/null)
    local total
    total=$(echo "$out" | sed -n 's/.*Collected : \([0-9]*\).*/\1/p' | tail -1)
    echo $(( total / $3 ))
}

# Thousands separators without depending on the machine's locale (printf's %'d needs one).
grouped() { sed -e ':a' -e 's/\([0-9]\)\([0-9]\{3\}\)\($\|,\)/\1,\2\3/' -e 'ta' <<<"$1"; }

printf '| operation | ferrolm | vodozemac | libolm | vodozemac / ferrolm | libolm / ferrolm |\n'
printf '| --- | ---: | ---: | ---: | ---: | ---: |\n'
specs=("$@")
[ ${#specs[@]} -gt 0 ] || specs=(olm_encrypt:200 olm_decrypt:200 olm_account_new:20 olm_outbound_session:20 megolm_create:50 megolm_encrypt:100 megolm_decrypt:100 megolm_inbound_unpickle:100 megolm_restore_decrypt_older:50 pk_decrypt:50 megolm_bulk_decrypt:1000)
for spec in "${specs[@]}"; do
    op=${spec%%:*}; n=${spec##*:}
    if [ "$op" = megolm_bulk_decrypt ]; then
        f=$(count ferrolm megolm_bulk_decrypt "$n") # count() divides by the n messages
        v=$(count vodozemac megolm_decrypt "$n")
        awk -v n="$(grouped "$n")" -v f="$f" -v v="$v" -v F="$(grouped "$f")" -v V="$(grouped "$v")" \
            'BEGIN { printf "| megolm_bulk_decrypt (per message, %s) | %s | %s (one by one) | – | %.2f× | – |\n", n, F, V, v / f }'
        continue
    fi
    f=$(count ferrolm "$op" "$n"); v=$(count vodozemac "$op" "$n"); l=$(count libolm "$op" "$n")
    awk -v op="$op" -v f="$f" -v v="$v" -v l="$l" -v F="$(grouped "$f")" -v V="$(grouped "$v")" -v L="$(grouped "$l")" \
        'BEGIN { printf "| %s | %s | %s | %s | %.2f× | %.2f× |\n", op, F, V, L, v / f, l / f }'
done

# The key store, ferrolm-store against matrix-sdk-sqlite. matrix-sdk-sqlite runs SQLite on
# tokio's blocking threads, outside `measured`, so these count the whole process with N
# operations and with none, for both implementations alike, and divide the difference by N.
# CPU work only: the fsync each commit waits for is not an instruction.
count_process() { # implementation operation n -> instructions of the whole process
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$ops" "$1" "$2" "$3" 2>&1 >/dev/null |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p' | tail -1
}
per_op() { # implementation operation n
    local with without
    with=$(count_process "$1" "$2" "$3"); without=$(count_process "$1" "$2" 0)
    echo $(( (with - without) / $3 ))
}
[ $# -gt 0 ] && exit 0 # named operations only: no store or machine table
printf '\n| store operation | ferrolm | matrix-sdk-sqlite | matrix-sdk-sqlite / ferrolm |\n'
printf '| --- | ---: | ---: | ---: |\n'
for spec in store_save_olm_session:200:"save one changed Olm session" store_lookup:500:"look up one room key among 1,000"; do
    op=${spec%%:*}; rest=${spec#*:}; n=${rest%%:*}; label=${rest#*:}
    f=$(per_op ferrolm "$op" "$n"); m=$(per_op matrix-sdk-sqlite "$op" "$n")
    awk -v op="$label" -v f="$f" -v m="$m" -v F="$(grouped "$f")" -v M="$(grouped "$m")" \
        'BEGIN { printf "| %s | %s | %s | %.2f× |\n", op, F, M, m / f }'
done

# ferrolm's machine on its SQLite store (benches/machine.rs's workloads, fewer devices: valgrind
# runs the set-up about 50 times slower), counted inside `measured_once` and divided by the
# devices (or events) it handled. One core (taskset): the Olm sessions a claim opens are spread
# over every core, and callgrind would count only the calling thread's.
printf '\n| machine operation (ferrolm, SQLite store) | instructions | per |\n'
printf '| --- | ---: | --- |\n'
for spec in "machine_keys_query:1000:a keys query (100 users of 10 devices):device" \
    "machine_share_new_sessions:1000:claim and room key share, no sessions (1,000 devices):device" \
    "machine_share_existing_sessions:1000:room key share, sessions established (1,000 devices):device" \
    "machine_decrypt_warm:200:decrypt_room_event, warm:event"; do
    op=${spec%%:*}; rest=${spec#*:}; n=${rest%%:*}; rest=${rest#*:}; label=${rest%%:*}; per=${rest##*:}
    out=$(taskset -c 0 valgrind --tool=callgrind --callgrind-out-file=/dev/null --collect-atstart=no \
        --toggle-collect='*measured*' "$ops" ferrolm "$op" "$n" 2>&1 >/dev/null)
    total=$(echo "$out" | sed -n 's/.*Collected : \([0-9]*\).*/\1/p' | tail -1)
    printf '| %s | %s | %s |\n' "$label" "$(grouped $(( total / n )))" "$per"
done
