//! `dlstatic package`: each artefact checked by what consumes it — an empty root (chroot)
//! under strace, skopeo and umoci, a local Lambda Runtime API, QEMU with Debian's cloud
//! kernel. One payload (numpy, certifi, pyyaml, msgpack) is built per link mode and
//! shared by the tests; packages come from the cache the other tests fill.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

mod common;
use common::{DLSTATIC, build, stderr};

use common::deploy_support::{self, LambdaApi, opens_outside, run_in_root};

/// numpy, ssl, sqlite3, ctypes, a package-data read and an entry-point lookup.
const SINGLE_FILE_CHECK: &str = "
import numpy, ssl, sqlite3, ctypes, importlib.resources, importlib.metadata as md
assert (numpy.linalg.inv(numpy.eye(3)) == numpy.eye(3)).all()
pem = importlib.resources.files('certifi').joinpath('cacert.pem').read_text()
assert 'BEGIN CERTIFICATE' in pem
(f2py,) = md.entry_points(group='console_scripts', name='f2py')
assert f2py.value.startswith('numpy.f2py'), f2py
assert md.version('numpy') == '2.1.3'
print('single ok', numpy.__file__, ssl.OPENSSL_VERSION, sqlite3.sqlite_version)
";

static BUILDS: Mutex<()> = Mutex::new(());

/// The payload for these tests (`--pie` or not), built once and reused while current.
fn payload(pie: bool) -> PathBuf {
    let _one_build_at_a_time = BUILDS.lock().unwrap_or_else(|e| e.into_inner());
    let name = if pie { "dist-pie" } else { "dist" };
    let out = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("deploy")
        .join(name);
    let mut args = vec!["--modules", "tests/packages/deploy.txt"];
    if pie {
        args.push("--pie");
    }
    let result = build(&out, &args);
    assert!(result.status.success(), "{}", stderr(&result));
    out
}

fn package(out: &Path, format: &str, dest: &Path, extra: &[&str]) {
    let result = Command::new(DLSTATIC)
        .arg("package")
        .arg(out)
        .args(["--format", format, "-o"])
        .arg(dest)
        .args(extra)
        .output()
        .unwrap();
    assert!(result.status.success(), "{}", stderr(&result));
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The single file alone in an empty root: the checks pass, the only files it opens
/// are itself and what /etc, /dev, /proc, /sys hold, and a link named after a console script
/// runs that script.
fn check_single_file(pie: bool) {
    let out = payload(pie);
    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path().join("root");
    std::fs::create_dir(&root).unwrap();
    package(&out, "single", &root.join("python3.11"), &[]);
    let trace = scratch.path().join("trace");
    let run = Command::new("strace")
        .args(["-f", "-e", "trace=open,openat,execve", "-o"])
        .arg(&trace)
        .arg("chroot")
        .arg(&root)
        .args(["/python3.11", "-c", SINGLE_FILE_CHECK])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", text(&run));
    assert!(
        text(&run).contains("single ok /python3.11/numpy/__init__.py"),
        "{}",
        text(&run)
    );
    let opened = opens_outside(&std::fs::read_to_string(&trace).unwrap(), "/python3.11");
    assert_eq!(
        opened,
        Vec::<String>::new(),
        "files opened outside the executable, /etc, /dev, /proc, /sys"
    );

    std::fs::hard_link(root.join("python3.11"), root.join("numpy-config")).unwrap();
    assert_console_script(&root, "/numpy-config");
}

#[test]
fn single_file_runs_alone_in_an_empty_root() {
    check_single_file(false);
}

#[test]
fn static_pie_loads_at_a_new_address_each_run_and_its_single_file_works() {
    let out = payload(true);
    let python = out.join("bin/python3.11");
    let header = Command::new("readelf")
        .arg("-hl")
        .arg(&python)
        .output()
        .unwrap();
    let header = String::from_utf8_lossy(&header.stdout);
    assert!(
        header.contains("DYN (Position-Independent Executable file)"),
        "{header}"
    );
    assert!(!header.contains("INTERP"), "{header}");
    let address = || {
        let run = run_in_root(
            &out,
            &["/bin/python3.11", "-c", "print(hex(id(object)))"],
            &[],
        );
        String::from_utf8_lossy(&run.stdout).trim().to_string()
    };
    let (first, second) = (address(), address());
    assert!(
        first.starts_with("0x") && first != second,
        "{first} {second}"
    );
    check_single_file(true);
}

#[test]
fn tar_output_runs_console_scripts_by_name_and_is_reproducible() {
    let out = payload(false);
    let scratch = tempfile::tempdir().unwrap();
    let (a, b) = (scratch.path().join("a.tar"), scratch.path().join("b.tar"));
    package(&out, "tar", &a, &[]);
    package(&out, "tar", &b, &[]);
    assert!(
        std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(),
        "two tars differ"
    );
    let root = scratch.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let untar = Command::new("tar")
        .arg("-xf")
        .arg(&a)
        .arg("-C")
        .arg(&root)
        .output()
        .unwrap();
    assert!(untar.status.success(), "{}", text(&untar));
    assert_console_script(&root, "/bin/numpy-config");
}

#[test]
fn oci_layout_is_accepted_by_skopeo_and_umoci_and_runs_in_a_chroot() {
    let out = payload(false);
    let scratch = tempfile::tempdir().unwrap();
    let image = scratch.path().join("image");
    package(&out, "oci", &image, &["--tag", "v1"]);
    let reference = format!("oci:{}:v1", image.display());
    let inspect = Command::new("skopeo")
        .args(["inspect", "--config", &reference])
        .output()
        .unwrap();
    assert!(inspect.status.success(), "{}", text(&inspect));
    assert!(
        text(&inspect).contains("\"/bin/python3.11\""),
        "{}",
        text(&inspect)
    );
    let docker = scratch.path().join("docker.tar");
    let copy = Command::new("skopeo")
        .args(["copy", &reference])
        .arg(format!("docker-archive:{}:dlstatic:v1", docker.display()))
        .output()
        .unwrap();
    assert!(copy.status.success(), "{}", text(&copy));

    let bundle = scratch.path().join("bundle");
    let unpack = Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:v1", image.display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(unpack.status.success(), "{}", text(&unpack));
    let run = run_in_root(
        &bundle.join("rootfs"),
        &[
            "/bin/python3.11",
            "-c",
            "import yaml, msgpack; print(yaml.__with_libyaml__, msgpack.unpackb(msgpack.packb([1])))",
        ],
        &[],
    );
    assert_eq!(
        String::from_utf8_lossy(&run.stdout).trim(),
        "True [1]",
        "{}",
        text(&run)
    );

    let (a, b) = (scratch.path().join("a.tar"), scratch.path().join("b.tar"));
    package(&out, "oci-archive", &a, &["--tag", "v1"]);
    package(&out, "oci-archive", &b, &["--tag", "v1"]);
    assert!(
        std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(),
        "two OCI archives differ"
    );
    let index = std::fs::read_to_string(image.join("index.json")).unwrap();
    let listing = Command::new("tar")
        .arg("-xOf")
        .arg(&a)
        .arg("index.json")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&listing.stdout),
        index,
        "same manifest digest"
    );
}

fn check_lambda(pie: bool) {
    let out = payload(pie);
    let scratch = tempfile::tempdir().unwrap();
    let app = app_dir(
        scratch.path(),
        "handler.py",
        "import yaml\n\ndef handle(event, context):\n    if event.get('fail'):\n        raise KeyError('no such thing')\n    return {'doubled': event['n'] * 2, 'id': context.aws_request_id, 'yaml': yaml.__version__}\n",
    );
    let zip = scratch.path().join("function.zip");
    package(
        &out,
        "lambda",
        &zip,
        &[
            "--app",
            app.to_str().unwrap(),
            "--handler",
            "handler.handle",
        ],
    );
    let root = scratch.path().join("root");
    let unzip = Command::new("unzip")
        .arg("-q")
        .arg(&zip)
        .arg("-d")
        .arg(&root)
        .output()
        .unwrap();
    assert!(unzip.status.success(), "{}", text(&unzip));

    let events = [r#"{"n": 1}"#, r#"{"fail": true}"#, r#"{"n": 21}"#];
    let api = LambdaApi::start(&events);
    let mut bootstrap = deploy_support::root_command(&root, &["/bootstrap"])
        .env("AWS_LAMBDA_RUNTIME_API", api.address())
        .spawn()
        .unwrap();
    let results = api.wait_for_results(events.len(), std::time::Duration::from_secs(60));
    let still_serving = api.asked_for_more();
    bootstrap.kill().unwrap();
    bootstrap.wait().unwrap();
    assert_eq!(results.len(), 3, "{results:?}");
    assert_eq!(results[0].0, "response");
    assert_eq!(
        results[0].1,
        r#"{"doubled": 2, "id": "request-0", "yaml": "6.0.2"}"#
    );
    assert_eq!(results[1].0, "error");
    assert!(
        results[1].1.contains(r#""errorType": "KeyError""#),
        "{}",
        results[1].1
    );
    assert_eq!(
        results[2].1,
        r#"{"doubled": 42, "id": "request-2", "yaml": "6.0.2"}"#
    );
    assert!(
        still_serving,
        "bootstrap stopped after the third invocation"
    );
}

#[test]
fn lambda_zip_serves_invocations_through_the_runtime_api() {
    check_lambda(false);
}

#[test]
fn lambda_zip_built_static_pie_serves_invocations() {
    check_lambda(true);
}

#[test]
fn bad_package_input_is_one_error_line_and_writes_nothing() {
    let scratch = tempfile::tempdir().unwrap();
    let dest = scratch.path().join("x.zip");
    let missing = scratch.path().join("nothing-here");
    for (out, args, needle) in [
        (missing.as_path(), vec!["--format", "tar"], "nothing-here"),
        (
            missing.as_path(),
            vec!["--format", "lambda"],
            "nothing-here",
        ),
    ] {
        let result = Command::new(DLSTATIC)
            .arg("package")
            .arg(out)
            .args(&args)
            .arg("-o")
            .arg(&dest)
            .output()
            .unwrap();
        let errors: Vec<_> = stderr(&result)
            .lines()
            .filter(|l| l.contains("error:"))
            .map(String::from)
            .collect();
        assert!(!result.status.success());
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains(needle), "{errors:?}");
        assert!(!dest.exists());
    }
}

#[test]
fn initramfs_boots_debian_cloud_kernel_runs_the_app_and_powers_off() {
    let out = payload(false);
    let scratch = tempfile::tempdir().unwrap();
    let app = app_dir(
        scratch.path(),
        "hello.py",
        "import ssl, sqlite3, sys, yaml\nprint('hello from PID 1:', yaml.safe_load('a: [1, 2]'), ssl.OPENSSL_VERSION.split()[0])\nsys.exit(3)\n",
    );
    let initrd = scratch.path().join("initrd.gz");
    package(
        &out,
        "initramfs",
        &initrd,
        &["--app", app.to_str().unwrap(), "--entry", "hello"],
    );
    let kernel = deploy_support::cloud_kernel();
    let started = std::time::Instant::now();
    let console = deploy_support::boot(&kernel, &initrd, std::time::Duration::from_secs(240));
    eprintln!("booted and powered off in {:.1?}", started.elapsed());
    assert!(
        console.contains("hello from PID 1: {'a': [1, 2]} OpenSSL"),
        "{console}"
    );
    assert!(
        console.contains("dlstatic init: exit status 3; powering off"),
        "{console}"
    );
    assert!(!console.contains("Kernel panic"), "{console}");
}

/// `DIR/app/FILE` holding `code`: a user's application directory for `--app`.
fn app_dir(dir: &Path, file: &str, code: &str) -> PathBuf {
    let app = dir.join("app");
    std::fs::create_dir(&app).unwrap();
    std::fs::write(app.join(file), code).unwrap();
    app
}

/// numpy's console script `numpy-config`, run by its own name at `path` in `root`.
fn assert_console_script(root: &Path, path: &str) {
    let script = run_in_root(root, &[path, "--version"], &[]);
    assert_eq!(
        String::from_utf8_lossy(&script.stdout).trim(),
        "2.1.3",
        "{}",
        text(&script)
    );
}
