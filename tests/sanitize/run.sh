#!/bin/sh
# Runs the runtime shim under ASan+UBSan, then under TSan, with 8 threads doing
# dlopen/dlsym/dlclose/dladdr/dlinfo/dlerror ROUNDS times each (default 1e5: `make
# sanitize`; `make test` runs a short version). Any sanitizer report fails the run.
set -eu
ROUNDS=${1:-100000}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# the shim's public names get a prefix, so glibc's own loader keeps its names
prefix="-Ddlopen=ds_dlopen -Ddlsym=ds_dlsym -Ddlvsym=ds_dlvsym -Ddlclose=ds_dlclose -Ddlerror=ds_dlerror
        -Ddladdr=ds_dladdr -Ddlinfo=ds_dlinfo -Ddlmopen=ds_dlmopen"
build() { # NAME FLAGS…
    name=$1
    shift
    cc -std=gnu11 -g -O1 -Wall -Wextra -Werror "$@" -c $prefix "$here/../../runtime/dlstatic.c" -o "$work/$name-shim.o"
    cc -std=gnu11 -g -O1 -Wall -Wextra -Werror "$@" -c "$here/harness.c" -o "$work/$name-harness.o"
    cc "$@" "$work/$name-shim.o" "$work/$name-harness.o" -o "$work/$name" -lpthread
}
build asan -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
build tsan -fsanitize=thread
echo "ASan+UBSan:"
ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 "$work/asan" "$ROUNDS"
echo "TSan:"
TSAN_OPTIONS=halt_on_error=1:exitcode=66 "$work/tsan" "$ROUNDS"
