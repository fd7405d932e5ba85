# Shared by bindings/{kotlin,swift,js}/build.sh (sourced, not run): the command line, step
# headers with elapsed time, and installing Debian packages as root.
#
# Set LANGUAGE before sourcing, and pass the script's arguments:
#   LANGUAGE=swift; . "$HERE/../common.sh" "$@"
# Afterwards BENCH is 1 if --bench was given, else 0.

BENCH=0
for arg in "$@"; do
    case $arg in
        --bench) BENCH=1 ;;
        *) echo "usage: $0 [--bench]" >&2; exit 2 ;;
    esac
done

START=$SECONDS
# "== LANGUAGE: what (t=Ns)": where the time of a run goes.
step() { echo "== $LANGUAGE: $* (t=$((SECONDS - START))s)"; }
# Runs a command as root (directly, or through sudo).
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
# Installs Debian packages, refreshing the package lists only if the first attempt fails.
apt_install() {
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" || {
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
    }
}
