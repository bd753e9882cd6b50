//! Static C dependencies built by dlstatic from Debian source packages (src/deps/,
//! docs/deps.md), with real PyPI sdists, real source packages and a real PostgreSQL
//! server:
//! - psycopg2: Debian's libpq.a needs libgssapi_krb5 and libldap (no static archives);
//!   dlstatic rebuilds libpq from postgresql-15 without them (extensions/deps/libpq.toml);
//! - lxml: Debian ships no libxslt.a/libexslt.a; the generic autotools path builds them;
//! - --no-build-deps turns it off; a second build reuses the dependency cache.
//!
//! Reuses the CPython build cached by tests/cpython.rs (or makes it).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

mod common;
use common::{build, stderr};

fn scratch() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("deps")
}

/// A modules file naming `requirement`, with the package's smoke test from
/// tests/packages/smoke/ beside it (where `dlstatic build` looks for it).
fn modules_file(name: &str, requirement: &str) -> PathBuf {
    let dir = scratch().join(format!("{name}-modules"));
    std::fs::create_dir_all(dir.join("smoke")).unwrap();
    let smoke =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/packages/smoke/{name}.py"));
    std::fs::copy(&smoke, dir.join("smoke").join(format!("{name}.py"))).unwrap();
    let modules = dir.join("modules.txt");
    std::fs::write(&modules, format!("{requirement}\n")).unwrap();
    modules
}

/// `dlstatic build --modules` into a new scratch()/OUT, which must work; its stderr.
fn build_ok(out: &str, modules: &Path) -> (PathBuf, String) {
    let out = scratch().join(out);
    // a previous run's OUT would make the build "up to date", with nothing to say
    let _ = std::fs::remove_dir_all(&out);
    let _ = std::fs::remove_dir_all(out.with_extension("km"));
    let (_, log) = common::build_ok(&out, modules.to_str().unwrap(), &[]);
    (out, log)
}

/// The psycopg2 payload, built once (building libpq from source the first time).
fn psycopg2_dist() -> &'static (PathBuf, String) {
    static DIST: OnceLock<(PathBuf, String)> = OnceLock::new();
    DIST.get_or_init(|| build_ok("psycopg2", &modules_file("psycopg2", "psycopg2==2.9.10")))
}

/// The undefined symbols of every member of `archive` (binutils' nm).
fn undefined_symbols(archive: &Path) -> Vec<String> {
    let out = Command::new("nm")
        .args(["-u", "--format=just-symbols"])
        .arg(archive)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn psycopg2_talks_to_a_real_server_through_a_libpq_dlstatic_built() {
    let (dist, log) = psycopg2_dist();
    let libpq = common::planned_archives(dist, "libpq.a");
    assert_eq!(libpq.len(), 1, "{libpq:?}");
    assert!(
        libpq[0].to_string_lossy().contains("/deps/postgresql-15-"),
        "libpq.a not from dlstatic's deps cache: {}\n{log}",
        libpq[0].display()
    );
    let undefined = undefined_symbols(&libpq[0]);
    assert!(
        undefined.iter().any(|s| s == "SSL_new"),
        "OpenSSL kept: {undefined:?}"
    );
    let unwanted: Vec<&String> = undefined
        .iter()
        .filter(|s| s.starts_with("gss_") || s.starts_with("ldap_") || s.starts_with("krb5_"))
        .collect();
    assert!(unwanted.is_empty(), "libpq.a still uses {unwanted:?}");
    assert!(
        log.contains("static libraries built by dlstatic from postgresql-15"),
        "{log}"
    );

    let server = Postgres::start();
    let script = "import psycopg2\n\
        conn = psycopg2.connect(host='/run/pg', user='postgres', dbname='postgres')\n\
        cur = conn.cursor()\n\
        cur.execute('CREATE TABLE t (id serial PRIMARY KEY, name text, score float8)')\n\
        cur.executemany('INSERT INTO t (name, score) VALUES (%s, %s)', [('a', 1.5), ('b', 2.25), ('c', None)])\n\
        conn.commit()\n\
        cur.execute('SELECT id, name, score FROM t ORDER BY id')\n\
        print(cur.fetchall())\n\
        cur.execute('SELECT version()')\n\
        print(cur.fetchone()[0].split()[0], psycopg2.extensions.libpq_version() // 10000)\n";
    let out = server.run_in_empty_root(dist, script);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "[(1, 'a', 1.5), (2, 'b', 2.25), (3, 'c', None)]\nPostgreSQL 15\n",
        "{}",
        stderr(&out)
    );
    let check = "empty root: table created, rows inserted and read back from a PostgreSQL 15 server; libpq built by dlstatic without GSSAPI/LDAP";
    common::results::record("deps", "psycopg2", "2.9.10", check);
}

#[test]
fn a_second_build_reuses_the_dependency_cache() {
    psycopg2_dist();
    let modules = modules_file("psycopg2", "psycopg2==2.9.10");
    let (dist, log) = build_ok("psycopg2-again", &modules);
    assert!(
        log.lines()
            .any(|l| l.starts_with("dlstatic: reused libpq built from postgresql-15")),
        "{log}"
    );
    assert!(!log.contains("dlstatic: building libpq"), "{log}");
    assert!(
        log.contains("(reused): libpgcommon.a, libpgport.a, libpq.a"),
        "{log}"
    );
    let (first, second) = (
        common::planned_archives(&psycopg2_dist().0, "libpq.a"),
        common::planned_archives(&dist, "libpq.a"),
    );
    assert_eq!(first, second, "the same cache entry");
}

#[test]
fn without_build_deps_the_audit_names_the_missing_library() {
    psycopg2_dist();
    let modules = modules_file("psycopg2", "psycopg2==2.9.10");
    let out = scratch().join("psycopg2-no-deps");
    let result = build(
        &out,
        &["--modules", modules.to_str().unwrap(), "--no-build-deps"],
    );
    let log = stderr(&result);
    assert!(!result.status.success(), "should fail:\n{log}");
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("error:")).collect();
    assert_eq!(errors.len(), 1, "{log}");
    // the link names the library most missing names come from, and counts the others
    // (libpq.a's stray strlcpy also finds a libbsd without its libmd); the audit names all
    assert!(
        errors[0].contains("from libgssapi_krb5, which has no static archive")
            && errors[0].contains("dlstatic rebuilds libpq without it from source package postgresql-15 unless --no-build-deps")
            && errors[0].contains("more libraries without a static archive"),
        "{}",
        errors[0]
    );
    let audit: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out.with_extension("km").join("audit.json")).unwrap(),
    )
    .unwrap();
    let missing: Vec<&serde_json::Value> = audit["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "missing-static-library" && f["severity"] == "error")
        .collect();
    assert!(
        missing
            .iter()
            .any(|f| f["message"].as_str().unwrap().contains("libgssapi_krb5.a")),
        "{audit:#}"
    );
    assert!(!out.exists(), "no OUT from a failed build");
}

// lxml's sdist compiles for several minutes on 2 cores: `make test-packages` runs it.
#[test]
#[ignore]
fn lxml_xslt_and_exslt_with_libxslt_dlstatic_built() {
    let modules = modules_file("lxml", "lxml==5.3.0");
    let (dist, log) = build_ok("lxml", &modules);
    for name in ["libxslt.a", "libexslt.a"] {
        let archives = common::planned_archives(&dist, name);
        assert_eq!(archives.len(), 1, "{name}: {archives:?}");
        assert!(
            archives[0].to_string_lossy().contains("/deps/libxslt-"),
            "{name} not from dlstatic's deps cache: {}\n{log}",
            archives[0].display()
        );
    }
    let script = "from lxml import etree\n\
        doc = etree.XML('<r><i n=\"2\">b</i><i n=\"1\">a</i><i n=\"3\">c</i></r>')\n\
        xslt = etree.XSLT(etree.XML('''<xsl:stylesheet version=\"1.0\"\n\
          xmlns:xsl=\"http://www.w3.org/1999/XSL/Transform\"\n\
          xmlns:str=\"http://exslt.org/strings\" xmlns:math=\"http://exslt.org/math\"\n\
          extension-element-prefixes=\"str math\">\n\
          <xsl:output method=\"text\"/>\n\
          <xsl:template match=\"/r\">\n\
            <xsl:for-each select=\"i\"><xsl:sort select=\"@n\"/><xsl:value-of select=\"str:padding(2, .)\"/></xsl:for-each>\n\
            <xsl:text> max=</xsl:text><xsl:value-of select=\"math:max(i/@n)\"/>\n\
          </xsl:template></xsl:stylesheet>'''))\n\
        print(str(xslt(doc)))\n";
    let out = in_empty_root(&dist).args(["-c", script]).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "aabbcc max=3\n",
        "{}",
        stderr(&out)
    );
    let check = "empty root: XSLT with EXSLT extensions; libxslt/libexslt built by dlstatic";
    common::results::record("deps", "lxml", "5.3.0", check);
}

const XSLT_PLUGIN: &str = r#"
#include <stdio.h>
#include <libxslt/xsltutils.h>
#include <libxslt/xslt.h>
#include <libexslt/exslt.h>
const char *report(void) {
    static char text[64];
    snprintf(text, sizeof text, "libxslt %d libexslt %d", xsltLibxsltVersion, exsltLibexsltVersion);
    return text;
}
"#;

/// What the fixtures below link: a host that dlopens `./plugin.so` and prints what its
/// `report` returns.
const PLUGIN_HOST: &str = r#"
#include <dlfcn.h>
#include <stdio.h>
int main(void) {
    void *plugin = dlopen("./plugin.so", RTLD_NOW);
    if (!plugin) { printf("dlopen: %s\n", dlerror()); return 1; }
    const char *(*report)(void) = (const char *(*)(void))dlsym(plugin, "report");
    printf("%s\n", report());
    return 0;
}
"#;

/// `dlstatic ARGS…` in `dir`.
fn dlstatic_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(common::DLSTATIC)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

// (Only the version numbers: calling into libxml2 from a host that never uses threads
// crashes in a static link, see docs/deps.md, Limits; lxml's test runs real transforms.)

/// The generic path, without a Python package: a plugin linked with -lexslt -lxslt
/// (Debian ships no archives for them). The audit says what would be built (or, once
/// cached, plans the cached archives); --no-build-deps makes them errors; `link` builds
/// them from source package libxslt, and the static host prints what the dynamic one does.
#[test]
fn a_plugin_linked_with_libxslt_gets_its_archives_built() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("plugin.c"), XSLT_PLUGIN).unwrap();
    std::fs::write(d.join("host.c"), PLUGIN_HOST).unwrap();
    let build = "cc -fPIC -I/usr/include/libxml2 -c plugin.c && cc -shared plugin.o -o plugin.so -lexslt -lxslt -lxml2 -lm && cc -c host.c";
    let captured = dlstatic_in(d, &["capture", "--db", "db", "--", "sh", "-c", build]);
    assert!(captured.status.success(), "{}", stderr(&captured));

    // an empty dependency cache: the audit says what a link would build, and that
    // nothing else stands in the way
    let ((off_ok, off), (on_ok, on)) = (
        audit_with_no_cache(d, &["--no-build-deps"]),
        audit_with_no_cache(d, &[]),
    );
    assert!(!off_ok && on_ok, "audit exit codes: {off:#}\n{on:#}");
    let missing = |report: &serde_json::Value, lib: &str| {
        finding(report, "missing-static-library", &format!("no {lib}:"))
    };
    for lib in ["libxslt.a", "libexslt.a"] {
        assert_eq!(missing(&off, lib).0, "\"error\"");
        let (severity, message) = missing(&on, lib);
        assert_eq!(severity, "\"info\"", "{message}");
        assert!(
            message.contains("dlstatic will build it from source package libxslt"),
            "{message}"
        );
    }

    let plan = link_host(d, "host-static", &[]);
    for lib in ["libxslt.a", "libexslt.a"] {
        let archives = common::archives_in_summary(&plan, lib);
        assert!(
            archives.len() == 1 && archives[0].contains("/deps/libxslt-"),
            "{lib}: {archives:?}"
        );
    }
    let (static_out, dynamic_out) = static_and_dynamic_hosts(d, "host-static");
    assert_eq!(static_out, dynamic_out);
    assert!(static_out.starts_with("libxslt 1013"), "{static_out}");
}

/// `dlstatic link` of host.o in `dir` into `exe`, which must work; its executed plan.
fn link_host(dir: &Path, exe: &str, extra: &[&str]) -> serde_json::Value {
    let args = [&["link", "--db", "db", "-o", exe, "host.o"], extra].concat();
    let linked = dlstatic_in(dir, &args);
    assert!(linked.status.success(), "{}", stderr(&linked));
    let plan = std::fs::read(dir.join(format!("{exe}.km/plan.json"))).unwrap();
    serde_json::from_slice(&plan).unwrap()
}

/// `dlstatic audit --json host.o` in `dir` with an empty dependency cache: did it pass,
/// and its report.
fn audit_with_no_cache(dir: &Path, extra: &[&str]) -> (bool, serde_json::Value) {
    let empty_cache = tempfile::tempdir().unwrap();
    let args = [&["audit", "--db", "db", "--json", "host.o"], extra].concat();
    let out = Command::new(common::DLSTATIC)
        .args(args)
        .env("DLSTATIC_CACHE", empty_cache.path())
        .current_dir(dir)
        .output()
        .unwrap();
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("audit --json: {e}: {}", stderr(&out)));
    (out.status.success(), report)
}

/// The severity and message of the report's `kind` finding whose message starts with
/// `prefix`.
fn finding(report: &serde_json::Value, kind: &str, prefix: &str) -> (String, String) {
    let findings = report["findings"].as_array().unwrap();
    let found = findings
        .iter()
        .find(|f| f["kind"] == kind && f["message"].as_str().unwrap().starts_with(prefix))
        .unwrap_or_else(|| panic!("no {kind} finding starting {prefix:?}: {report:#}"));
    (found["severity"].to_string(), found["message"].to_string())
}

/// What `static_exe` (linked by dlstatic in `dir`) and host.o linked by cc print there;
/// the static one must succeed.
fn static_and_dynamic_hosts(dir: &Path, static_exe: &str) -> (String, String) {
    let dynamic = Command::new("cc")
        .args(["host.o", "-o", "host-dynamic"])
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(dynamic.success());
    let run = |exe: &str| {
        Command::new(dir.join(exe))
            .current_dir(dir)
            .output()
            .unwrap()
    };
    let (static_out, dynamic_out) = (run(static_exe), run("host-dynamic"));
    assert!(static_out.status.success(), "{}", stderr(&static_out));
    (
        String::from_utf8_lossy(&static_out.stdout).into_owned(),
        String::from_utf8_lossy(&dynamic_out.stdout).into_owned(),
    )
}

const PROVIDER_PLUGIN: &str = r#"
#include <stdio.h>
#include <openssl/evp.h>
#include <openssl/provider.h>
/* MD4 lives in OpenSSL's legacy provider, which Debian's libcrypto loads from
   ossl-modules/legacy.so */
const char *report(void) {
    static char text[80];
    OSSL_PROVIDER *legacy = OSSL_PROVIDER_load(NULL, "legacy");
    OSSL_PROVIDER *fallback = OSSL_PROVIDER_load(NULL, "default");
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    EVP_MD *md4 = EVP_MD_fetch(NULL, "MD4", NULL);
    if (!legacy || !fallback || !md4 || !EVP_Digest("abc", 3, digest, &size, md4, NULL))
        return "md4(abc) = legacy provider: not available";
    int used = sprintf(text, "md4(abc) = ");
    for (unsigned int i = 0; i < size; i++)
        used += sprintf(text + used, "%02x", digest[i]);
    return text;
}
"#;

/// An archive that exists but cannot serve: Debian's libcrypto.a loads OpenSSL's legacy
/// provider with dlopen. A plugin that loads it gets libcrypto (and libssl) rebuilt from
/// source package openssl with the providers compiled in (extensions/deps/libcrypto.toml);
/// the audit says so first, and the static host digests MD4 as the dynamic one does.
/// With --no-build-deps the audit warns, and Debian's archive indeed fails.
#[test]
fn a_plugin_loading_openssl_providers_gets_libcrypto_rebuilt_with_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("plugin.c"), PROVIDER_PLUGIN).unwrap();
    std::fs::write(d.join("host.c"), PLUGIN_HOST).unwrap();
    let build = "cc -fPIC -c plugin.c && cc -shared plugin.o -o plugin.so -lcrypto && cc -c host.c";
    let captured = dlstatic_in(d, &["capture", "--db", "db", "--", "sh", "-c", build]);
    assert!(captured.status.success(), "{}", stderr(&captured));

    let unfit = |report: &serde_json::Value| {
        let prefix = "plugin.so uses OSSL_PROVIDER_load: Debian's libcrypto.a loads";
        finding(report, "unfit-static-library", prefix)
    };
    let ((off_ok, off), (on_ok, on)) = (
        audit_with_no_cache(d, &["--no-build-deps"]),
        audit_with_no_cache(d, &[]),
    );
    assert!(off_ok && on_ok, "audit exit codes: {off:#}\n{on:#}");
    assert_eq!(unfit(&off).0, "\"warning\"");
    let (severity, message) = unfit(&on);
    assert_eq!(severity, "\"info\"", "{message}");
    assert!(
        message.contains("dlstatic will build libcrypto from source package openssl"),
        "{message}"
    );

    let plan = link_host(d, "host-static", &[]);
    let archives = common::archives_in_summary(&plan, "libcrypto.a");
    assert!(
        archives.len() == 1 && archives[0].contains("/deps/openssl-"),
        "{archives:?}"
    );
    let (static_out, dynamic_out) = static_and_dynamic_hosts(d, "host-static");
    assert_eq!(static_out, dynamic_out);
    assert_eq!(static_out, "md4(abc) = a448017aaf21d8525fc10ae87aa6729d\n");

    link_host(d, "host-debian", &["--no-build-deps"]);
    let (debian_out, _) = static_and_dynamic_hosts(d, "host-debian");
    assert_eq!(debian_out, "md4(abc) = legacy provider: not available\n");
}

/// The payload's interpreter in an empty root holding only the payload.
fn in_empty_root(dist: &Path) -> Command {
    let mut command = dlstatic::python::verify::chroot_command(dist);
    command.args(["/bin/python3", "-I"]);
    command
}

/// A PostgreSQL 15 server of its own, listening only on a Unix socket in a temporary
/// directory; stopped when dropped.
struct Postgres {
    dir: tempfile::TempDir,
}

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

impl Postgres {
    fn start() -> Postgres {
        // in /tmp: the server runs as `postgres` (initdb refuses root) and must reach it
        let dir = tempfile::Builder::new()
            .prefix("dlstatic-pg")
            .tempdir_in("/tmp")
            .unwrap();
        for sub in ["data", "socket"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        let chown = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(chown.success());
        let data = dir.path().join("data");
        let initdb = as_postgres(&format!("{PG_BIN}/initdb"))
            .args(["--auth=trust", "--username=postgres", "-D"])
            .arg(&data)
            .output()
            .unwrap();
        assert!(initdb.status.success(), "initdb: {}", stderr(&initdb));
        let options = format!(
            "-c listen_addresses= -c unix_socket_directories={}",
            dir.path().join("socket").display()
        );
        let start = as_postgres(&format!("{PG_BIN}/pg_ctl"))
            .args(["start", "-w", "-t", "60", "-o", &options, "-l"])
            .arg(dir.path().join("server.log"))
            .arg("-D")
            .arg(&data)
            .output()
            .unwrap();
        let server_log = std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
        assert!(
            start.status.success(),
            "pg_ctl start: {}\n{server_log}",
            stderr(&start)
        );
        Postgres { dir }
    }

    /// `python3 -I -c script` in an empty root holding only `dist`, with the server's
    /// socket directory bind-mounted at /run/pg (in a mount namespace of its own).
    fn run_in_empty_root(&self, dist: &Path, script: &str) -> Output {
        let mount_point = dist.join("run/pg");
        std::fs::create_dir_all(&mount_point).unwrap();
        let shell =
            "mount --bind \"$1\" \"$2/run/pg\" && exec chroot \"$2\" /bin/python3 -I -c \"$3\"";
        Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", shell, "sh"])
            .arg(self.dir.path().join("socket"))
            .arg(dist)
            .arg(script)
            .output()
            .unwrap()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = as_postgres(&format!("{PG_BIN}/pg_ctl"))
            .args(["stop", "-m", "immediate", "-D"])
            .arg(self.dir.path().join("data"))
            .output();
    }
}

/// `program` run as the unprivileged `postgres` user (Debian's postgresql package makes it).
fn as_postgres(program: &str) -> Command {
    let mut command = Command::new("runuser");
    command.args(["-u", "postgres", "--", program]);
    command
}
