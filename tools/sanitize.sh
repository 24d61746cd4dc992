#!/usr/bin/env bash
# Run refnet's Cython kernels under AddressSanitizer (gcc's libasan) and count the reports.
#
#   tools/sanitize.sh [FUZZ_COUNT] [PYTEST_ARGS...]      (default: 2000 mutants, tests/kernels)
#   env: ASAN_DIR (/tmp/refnet-asan), FUZZ_SEED (0), FUZZ_JOBS (2), PYTHON (python3)
#
# The repo (without .git, .cache and built .so files) is copied to $ASAN_DIR (default
# /tmp/refnet-asan) and the kernels are built there with -fsanitize=address; the working tree's
# own in-place .so files are never touched. Python is not instrumented, so libasan is
# LD_PRELOADed; leak detection is off (CPython and NumPy keep memory until exit on purpose).
# Then, with every report written to $ASAN_DIR/reports/asan.<pid>:
#   1. pytest tests/kernels (the kernel property tests, hypothesis included)
#   2. pytest tests/test_fuzz.py tests/test_runtime_misuse.py (malformed models, a CI fuzz run,
#      runtime misuse, NaN/Inf inputs through every float kernel vs LiteRT)
#   3. python -m tools.fuzz --count FUZZ_COUNT over the real, factory and mini models
# and the number of sanitizer reports is printed. Exit status 0 only if there are none and the
# test runs and the fuzz run pass.
set -uo pipefail

REPO="${REFNET_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
if [ ! -f "$REPO/setup.py" ] || [ ! -d "$REPO/refnet" ] || [ ! -d "$REPO/kernels" ]; then
    echo "$REPO is not the refnet repo (set REFNET_REPO)" >&2
    exit 2
fi
ASAN_DIR="${ASAN_DIR:-/tmp/refnet-asan}"
FUZZ_COUNT="${1:-2000}"
shift || true
PYTEST_ARGS=("$@")
[ ${#PYTEST_ARGS[@]} -eq 0 ] && PYTEST_ARGS=(tests/kernels)
REPORTS="$ASAN_DIR/reports"
PY="${PYTHON:-python3}"

LIBASAN="$(gcc -print-file-name=libasan.so)"
if [ ! -e "$LIBASAN" ]; then
    echo "libasan.so not found (apt-get install libasan8 / gcc)" >&2
    exit 2
fi

echo "== copying $REPO to $ASAN_DIR"
rm -rf "$ASAN_DIR"
mkdir -p "$ASAN_DIR" "$REPORTS"
(cd "$REPO" && tar --exclude=./.git --exclude=./.cache --exclude=./build --exclude='*.so' \
    --exclude='__pycache__' --exclude=./.hypothesis -cf - .) | (cd "$ASAN_DIR" && tar -xf -)

echo "== building the kernels with -fsanitize=address"
(cd "$ASAN_DIR" && \
    CFLAGS="-fsanitize=address -fno-omit-frame-pointer -g -O1" \
    LDFLAGS="-fsanitize=address" \
    "$PY" setup.py build_ext --inplace -q >"$ASAN_DIR/build.log" 2>&1) || {
    echo "build failed, see $ASAN_DIR/build.log" >&2; tail -20 "$ASAN_DIR/build.log" >&2; exit 2; }
ls "$ASAN_DIR"/refnet/_kernels_*.so | sed 's/^/   /'
if [ "$(nm -D "$ASAN_DIR"/refnet/_kernels_conv*.so | grep -c __asan_report)" -eq 0 ]; then
    echo "the kernels are not instrumented" >&2
    exit 2
fi

# libstdc++ preloaded too: LiteRT (used by the comparison tests) throws C++ exceptions, and
# ASan's __cxa_throw interceptor needs the real one resolvable when it initializes.
export LD_PRELOAD="$LIBASAN $(gcc -print-file-name=libstdc++.so.6)"
export ASAN_OPTIONS="detect_leaks=0:log_path=$REPORTS/asan:halt_on_error=1:abort_on_error=0:allocator_may_return_null=1:detect_stack_use_after_return=0"
export REFNET_CACHE="${REFNET_CACHE:-$REPO/.cache/models}"
export REFNET_SHARED="${REFNET_SHARED:-$(dirname "$REPO")/shared}"
export PYTHONDONTWRITEBYTECODE=1
export OPENBLAS_NUM_THREADS=1
cd "$ASAN_DIR"

# The instrumented kernels are the ones imported: refnet must resolve to the copy.
"$PY" -c "import refnet._kernels_conv as k, sys; assert k.__file__.startswith('$ASAN_DIR'), k.__file__; print('   refnet kernels from', k.__file__)" || exit 2

# Positive control: an overflowing read of a NumPy buffer must be reported (the runtime is
# active and NumPy's heap blocks carry redzones), into a log of its own.
mkdir -p "$ASAN_DIR/control"
ASAN_OPTIONS="detect_leaks=0:log_path=$ASAN_DIR/control/asan" "$PY" -c \
    "import ctypes, numpy as np; a = np.zeros(1000, np.uint8); ctypes.string_at(a.ctypes.data, 1064)" \
    2>/dev/null
if ! grep -qs "heap-buffer-overflow" "$ASAN_DIR"/control/asan.*; then
    echo "positive control: AddressSanitizer did not report an overflow; the setup is broken" >&2
    exit 2
fi
echo "   positive control: heap-buffer-overflow reported as expected"

status=0
echo "== pytest ${PYTEST_ARGS[*]} (under ASan)"
"$PY" -m pytest -q -p no:cacheprovider "${PYTEST_ARGS[@]}" 2>&1 | tail -3
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

echo "== pytest tests/test_fuzz.py tests/test_runtime_misuse.py (under ASan)"
"$PY" -m pytest -q -p no:cacheprovider tests/test_fuzz.py tests/test_runtime_misuse.py 2>&1 | tail -3
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

echo "== fuzz: $FUZZ_COUNT mutants (under ASan)"
# ASan reserves a huge shadow mapping: no RLIMIT_AS in the workers (--address-space 0).
"$PY" -m tools.fuzz --count "$FUZZ_COUNT" --seed "${FUZZ_SEED:-0}" --jobs "${FUZZ_JOBS:-2}" \
    --address-space 0 --out "$ASAN_DIR/fuzz-findings" 2>&1 | grep -E "^(TOTAL|problems|typed|[0-9]+ mutants)" | sort -u
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

n_reports=$(ls "$REPORTS" | wc -l)
echo
echo "AddressSanitizer reports: $n_reports"
if [ "$n_reports" -ne 0 ]; then
    status=1
    for f in "$REPORTS"/*; do
        echo "--- $f"
        grep -E "ERROR: AddressSanitizer|^    #[0-9] " "$f" | head -12
    done
fi
exit $status
