#!/usr/bin/env bash
# Capture two plugins that define the same symbols, link a static host with them, and
# run it next to the dynamic host, then alone in an empty root holding only the binary
# and two stub files.
set -euo pipefail
DLSTATIC=$(realpath "${1:-target/release/dlstatic}")
SRC=$(cd "$(dirname "$0")/../tests/fixtures/two_plugins" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cp "$SRC"/*.c "$WORK"
cd "$WORK"
"$DLSTATIC" capture --db db -- sh -c '
  mkdir -p plugins
  $CC -fPIC -O2 -c a.c -o a.o && $CC -shared a.o -o plugins/a.so
  $CC -fPIC -O2 -c b.c -o b.o && $CC -shared b.o -o plugins/b.so'
cc -c host.c -o host.o && cc host.o -o host_dyn
"$DLSTATIC" link --db db -o host_static host.o
echo "--- dynamic host";  ./host_dyn plugins/a.so plugins/b.so
echo "--- static host";   ./host_static plugins/a.so plugins/b.so
echo "--- ldd host_static"; ldd host_static || true
mkdir -p root/plugins && cp host_static root/
for so in a b; do
  id=$(grep -l "\"path\": \"$WORK/plugins/$so.so\"" host_static.km/*.km.json)
  cp "${id%.km.json}.km.id" root/plugins/$so.so
done
echo "--- static host in an empty root (files: $(cd root && find . -type f | sort | tr '\n' ' '))"
if [ "$(id -u)" = 0 ]; then chroot root /host_static plugins/a.so plugins/b.so
else unshare -r chroot root /host_static plugins/a.so plugins/b.so; fi
