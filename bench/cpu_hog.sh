#!/bin/sh
# Run a command RUNS times in a row (default 1) while every core is kept busy by a
# Python busy loop, as on a loaded machine; stop at the first failing run. The busy
# loops are ended however the script ends.
#
#   bench/cpu_hog.sh -n 5 python -m pytest -q
set -u
runs=1
if [ "${1:-}" = "-n" ]; then
    runs=$2
    shift 2
fi
if [ $# -eq 0 ]; then
    echo "usage: bench/cpu_hog.sh [-n RUNS] COMMAND [ARG...]" >&2
    exit 2
fi
python=${PYTHON:-python3}
cores=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
hogs=""
stop_hogs() {
    [ -n "$hogs" ] && kill $hogs 2>/dev/null
    hogs=""
}
trap stop_hogs EXIT
trap 'exit 130' INT TERM
i=0
while [ "$i" -lt "$cores" ]; do
    "$python" -c "while 1: pass" &
    hogs="$hogs $!"
    i=$((i + 1))
done
echo "cpu_hog: $cores busy loops;$hogs" >&2
run=1
while [ "$run" -le "$runs" ]; do
    echo "cpu_hog: run $run of $runs: $*" >&2
    "$@" || { status=$?; echo "cpu_hog: run $run failed ($status)" >&2; exit "$status"; }
    run=$((run + 1))
done
