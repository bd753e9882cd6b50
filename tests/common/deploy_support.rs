//! What tests/deploy.rs needs besides dlstatic: running in an empty root, reading an
//! strace log, and a local AWS Lambda Runtime API.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `chroot ROOT ARGS…` (through `unshare -r` when not root), output captured.
pub fn root_command(root: &Path, args: &[&str]) -> Command {
    let mut command = dlstatic::python::verify::chroot_command(root);
    command.args(args).stdin(Stdio::null());
    command
}

pub fn run_in_root(root: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = root_command(root, args);
    command.envs(env.iter().copied());
    command.output().unwrap()
}

/// Directories a static glibc and OpenSSL look into whatever the program does (locale
/// archive and aliases, openssl.cnf); failed attempts there are allowed, not opens.
const SYSTEM_LOOKUPS: &[&str] = &["/usr/lib/locale/", "/usr/share/locale/", "/usr/lib/ssl/"];

/// From an `strace -f -e trace=open,openat,execve` log, the opens after `exe` was
/// executed that reach outside `exe` itself (paths below it, which the dlopen shim
/// tries and which fail with ENOTDIR, count as inside), /etc, /tmp and the kernel's
/// /dev, /proc and /sys (glibc's sysconf(_SC_NPROCESSORS_CONF) reads
/// /sys/devices/system/cpu/possible: OpenBLAS asks at start-up when numpy links it);
/// failed attempts in SYSTEM_LOOKUPS and listings of the working directory are not counted.
pub fn opens_outside(trace: &str, exe: &str) -> Vec<String> {
    let started = format!("execve(\"{exe}\"");
    let Some(start) = trace.find(&started) else {
        return vec![format!("{exe} never ran")];
    };
    // `-c` puts '' (the working directory, here the root holding only `exe`) on
    // sys.path, and Python's path finder lists it: directory opens of "/" and "."
    let working_directory = |line: &str| {
        line.contains("O_DIRECTORY") && (line.contains("\"/\"") || line.contains("\".\""))
    };
    let inside = |path: &str| {
        path == exe
            || path.starts_with(&format!("{exe}/"))
            || ["/etc/", "/dev/", "/proc/", "/sys/", "/tmp/"]
                .iter()
                .any(|dir| path.starts_with(dir))
    };
    trace[start..]
        .lines()
        .filter(|line| line.contains("open(") || line.contains("openat("))
        .filter(|line| {
            let path = line.split('"').nth(1).unwrap_or("");
            let failed = line.contains("= -1 ");
            !inside(path)
                && !working_directory(line)
                && !(failed && SYSTEM_LOOKUPS.iter().any(|dir| path.starts_with(dir)))
        })
        .map(String::from)
        .collect()
}

#[derive(Default)]
struct State {
    events: Vec<String>,
    served: usize,
    /// (response|error, body) per invocation, in order.
    results: Vec<(String, String)>,
    asked_for_more: bool,
}

/// A Runtime API on 127.0.0.1 serving `events` in order, recording what comes back.
pub struct LambdaApi {
    address: String,
    state: Arc<Mutex<State>>,
}

impl LambdaApi {
    pub fn start(events: &[&str]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let state = Arc::new(Mutex::new(State {
            events: events.iter().map(|e| e.to_string()).collect(),
            ..State::default()
        }));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = shared.clone();
                std::thread::spawn(move || serve(stream, &state));
            }
        });
        LambdaApi { address, state }
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// The results once `count` invocations have one (or at `timeout`).
    pub fn wait_for_results(&self, count: usize, timeout: Duration) -> Vec<(String, String)> {
        let started = Instant::now();
        while started.elapsed() < timeout {
            let state = self.state.lock().unwrap();
            if state.results.len() >= count && state.asked_for_more {
                break;
            }
            drop(state);
            std::thread::sleep(Duration::from_millis(50));
        }
        self.state.lock().unwrap().results.clone()
    }

    /// Whether the runtime asked for another invocation after the last event.
    pub fn asked_for_more(&self) -> bool {
        self.state.lock().unwrap().asked_for_more
    }
}

/// One keep-alive connection: requests until the peer closes it.
fn serve(stream: TcpStream, state: &Mutex<State>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0;
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).unwrap();
            if header.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .to_string();
        let reply = answer(&path, String::from_utf8_lossy(&body).into_owned(), state);
        writer.write_all(reply.as_bytes()).unwrap();
    }
}

fn answer(path: &str, body: String, state: &Mutex<State>) -> String {
    let mut state = state.lock().unwrap();
    if path == "/2018-06-01/runtime/invocation/next" {
        if state.served == state.events.len() {
            state.asked_for_more = true;
            drop(state);
            std::thread::sleep(Duration::from_secs(3600));
            return String::new();
        }
        let id = state.served;
        state.served += 1;
        let event = &state.events[id];
        return format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: request-{id}\r\n\
             Lambda-Runtime-Deadline-Ms: 4102444800000\r\nLambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:test\r\n\
             Content-Length: {}\r\n\r\n{event}",
            event.len()
        );
    }
    let kind = path.rsplit('/').next().unwrap_or("").to_string();
    state.results.push((kind, body));
    "HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\n{}".to_string()
}

/// Debian's cloud kernel (linux-image-cloud-amd64).
pub fn cloud_kernel() -> std::path::PathBuf {
    let mut kernels: Vec<_> = std::fs::read_dir("/boot")
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.to_string_lossy().contains("vmlinuz-")
                && p.to_string_lossy().ends_with("-cloud-amd64")
        })
        .collect();
    kernels.sort();
    kernels
        .pop()
        .expect("no /boot/vmlinuz-*-cloud-amd64: apt-get install linux-image-cloud-amd64")
}

/// Boots `kernel` with `initrd` under QEMU and returns the serial console once the VM
/// has exited by itself; fails after `limit`. TCG, unless DLSTATIC_TEST_KVM=1: on nested
/// VMs /dev/kvm can be there and accepted while the guest never gets past the BIOS.
pub fn boot(kernel: &Path, initrd: &Path, limit: Duration) -> String {
    // a file, not a pipe: nobody reads a pipe while the VM runs
    let console_log = initrd.with_extension("console");
    let accelerator = match std::env::var("DLSTATIC_TEST_KVM").as_deref() {
        Ok("1") => "kvm",
        _ => "tcg",
    };
    let mut qemu = Command::new("qemu-system-x86_64")
        .args([
            "-accel",
            accelerator,
            "-m",
            "2048",
            "-nographic",
            "-no-reboot",
        ])
        .arg("-kernel")
        .arg(kernel)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", "console=ttyS0 panic=-1 quiet"])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&console_log).unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let console = || std::fs::read_to_string(&console_log).unwrap_or_default();
    while qemu.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            qemu.kill().unwrap();
            panic!("the VM did not power off within {limit:?}:\n{}", console());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let output = qemu.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "qemu: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        console()
    );
    console()
}
