#!/bin/bash
# Regenerates the committed seed inputs of dlstatic's fuzz targets (docs/fuzzing.md)
# from the tiny sources below: gcc/g++ 12 objects, a shared object, a regular and a
# thin archive, response files, modules.txt lines and capture-db JSON.
# Run from anywhere: ./fuzz/seeds/make-seeds.sh
set -euo pipefail
cd "$(dirname "$0")"
rm -rf elf archive compiler_args modules_txt codegen
mkdir -p elf archive compiler_args modules_txt codegen
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cat > "$tmp/c.c" <<'EOF'
int global_data = 3;
int common_data;
__attribute__((visibility("hidden"))) int hidden_fn(int x) { return x + 1; }
__attribute__((weak)) int weak_fn(void) { return 1; }
__thread int tls_data = 5;
extern int external_fn(int);
extern int weak_ref(void) __attribute__((weak));
static int impl_a(void) { return 1; }
static int (*resolve(void))(void) { return impl_a; }
int ifunc_fn(void) __attribute__((ifunc("resolve")));
const char *const lib = "libz.so.1";
__attribute__((constructor)) static void init(void) { global_data++; }
int uses(void) { return hidden_fn(common_data) + weak_fn() + tls_data + external_fn(2) + ifunc_fn() + (weak_ref ? weak_ref() : 0); }
EOF
cat > "$tmp/cxx.cc" <<'EOF'
inline int counter() { static int n = 0; return ++n; }
template <typename T> T twice(T v) { return v + v; }
extern "C" int entry(void) { return counter() + twice(2) + (int)twice(1.5); }
EOF
echo 'int a(void) { return 1; }' > "$tmp/a.c"
echo 'extern int a(void); int b(void) { return a() + 1; }' > "$tmp/member_with_a_long_name.c"

gcc -O1 -fPIC -c "$tmp/c.c" -o elf/c.o
g++ -O1 -fPIC -c "$tmp/cxx.cc" -o elf/cxx.o
gcc -O1 -fPIC -flto -c "$tmp/a.c" -o elf/lto.o
gcc -O1 -fPIC -c "$tmp/a.c" -o "$tmp/a.o"
gcc -O1 -fPIC -c "$tmp/member_with_a_long_name.c" -o "$tmp/member_with_a_long_name.o"
cp "$tmp/a.o" elf/a.o
gcc -shared -s -Wl,-soname,libplugin.so.1 -Wl,-z,noseparate-code -Wl,-z,max-page-size=0x1000 \
    -o elf/plugin.so elf/c.o -lm

(cd "$tmp" && ar rcsD regular.a a.o member_with_a_long_name.o && ar rcsTD thin.a a.o member_with_a_long_name.o)
cp "$tmp/regular.a" "$tmp/thin.a" archive/

# command line, then NUL-separated response files named @0, @1, ...
printf -- '-shared\n-o\nx.so\na.o\n@0\n-Wl,-soname,x.so.1' > compiler_args/rsp
printf -- "-lz -L/opt/lib 'b c.o' \"d\\\\\"e.o\" f\\\\ g.o @1\0-Xlinker --as-needed -pthread libt.a" >> compiler_args/rsp
printf -- '-O2\n-shared\n-fPIC\np.c\nq.o\n-x\nc\nr.inc\n-o\np.so\n-lm\n-DX=1\n-c' > compiler_args/compile
printf -- '@0\0@0' > compiler_args/self-include

printf '%s\n' '# comment' 'simplejson==3.19.3  # pinned' 'requests[socks]>=2.0,<3' '-r other.txt' \
    'markupsafe @ https://example.org/m.tar.gz' 'git+https://github.com/x/y.git#egg=y' \
    '--index-url https://pypi.org/simple' 'zope.interface==6.0 ; python_version >= "3.8"' \
    'falcon 3.1.3 https://example.org/falcon.tar.gz "cython setuptools"' './pkg' '-e ./pkg' \
    > modules_txt/mixed

id=c49bfdd0e7540b4a860c59b57c43cad3
cat > codegen/module.json <<EOF
{"format":3,"so_name":"s\"x*.so","path":"/tmp/p/s.so","soname":"libs.so.1","md5":"$id","driver":"c++","objects":[{"origin":"libx.a(m.o)","md5":"66d7f97dcc4d602902a06d14e2f9a29f"}],"libs":["m"],"lib_dirs":[],"shared_inputs":[],"linker_flags":["-pthread"],"exports":["make_context","tls_var","data","_ZN1A1fEv"],"defined":[{"name":"make_context","kind":"func","size":56},{"name":"tls_var","kind":"tls","size":4},{"name":"data","kind":"object","size":8},{"name":"_ZN1A1fEv","kind":"func","size":1},{"name":"hidden\\\\x","kind":"other","size":0},{"name":"caf\u00e9","kind":"func","size":3}],"mangled":6,"undefined":["SSL_CTX_new"],"weak_undefined":[],"constructors":[],"library_names":["libz.so.1"],"bindings":{"SSL_CTX_new":"SSL_CTX_new_${id}_km"}}
EOF
cat > codegen/record.json <<EOF
{"version":1,"output":"/b/lib/x.so","md5":"$id","soname":null,"cwd":"/b","driver":"cc","argv":["-shared","a.o","-o","lib/x.so"],"inputs":[{"kind":"object","path":"/b/a.o","md5":"f882da5e2750df197f92a74009acdf7e"},{"kind":"archive","path":"/b/l.a","members":[{"name":"m.o","md5":"f882da5e2750df197f92a74009acdf7e"}]},{"kind":"shared","path":"/usr/lib/libz.so"},{"kind":"other","path":"/b/x.ld"}],"libs":["z"],"lib_dirs":["/b"],"linker_flags":[],"exports":["helper"]}
EOF
ls -l elf archive compiler_args modules_txt codegen
