//! Packages whose build takes many minutes: every test here is `#[ignore]`d, so `make
//! test` leaves them out and `make test-packages` (`cargo test --release -- --ignored`)
//! runs them. Each is built from its
//! sdist, verified in an empty root, and a script's output in the static interpreter
//! (empty root) is compared with the dynamic interpreter of the same build.
//!
//! rapidfuzz 3.14.6: C++ compiled by CMake with interprocedural optimisation (GCC LTO,
//! `-flto=auto -fno-fat-lto-objects`) through scikit-build-core. Under capture its
//! objects are made fat (capture::compiler_args::fat_lto_flag), so they link without
//! the `gcc -r -flto` conversion, which dies with an internal compiler error on them.
//! Cold, it builds in about 8 CPU minutes (26 wall-clock minutes on the shared 2 cores).

//!
//! pandas 2.2.3 (meson-python, Cython, C and C++; with numpy 2.1.3): 36 minutes on the
//! shared cores when first measured. gevent 24.11.1 (Cython, bundled libev and libuv,
//! cffi): about 6 minutes.

use std::path::{Path, PathBuf};

mod common;
use common::{build_ok, static_and_dynamic};

/// What both interpreters print: the C++ implementation is forced
/// (`RAPIDFUZZ_IMPLEMENTATION=cpp` raises instead of falling back to pure Python).
const RAPIDFUZZ_CODE: &str = "\
from rapidfuzz import fuzz, process, distance
print(fuzz.ratio('this is a test', 'this is a test!'))
print(fuzz.partial_ratio('this is a test', 'this is a test!'))
print(fuzz.token_sort_ratio('fuzzy wuzzy was a bear', 'wuzzy fuzzy was a bear'))
print(process.extractOne('new york jets', ['Atlanta Falcons', 'New York Jets', 'Dallas Cowboys']))
print(distance.Levenshtein.distance('kitten', 'sitting'))
";

/// groupby, time zones (tzdata) and a pivot table through pandas' compiled modules.
const PANDAS_CODE: &str = "\
import pandas
frame = pandas.DataFrame({'key': list('abacb'), 'value': [1, 2, 3, 4, 5]})
print(frame.groupby('key')['value'].agg(['sum', 'mean', 'count']))
print(pandas.date_range('2024-03-30', periods=3, freq='D', tz='Europe/Paris'))
print(frame.pivot_table(index='key', values='value', aggfunc='max'))
print(pandas.Series([3, 1, 2]).rank().tolist(), pandas.__version__)
";

/// Greenlets scheduled by gevent's compiled libev loop, and a TCP echo through it.
const GEVENT_CODE: &str = "\
import gevent, gevent.socket
from gevent.server import StreamServer
print(type(gevent.get_hub().loop).__module__)
order = []
gevent.joinall([gevent.spawn(lambda i=i: (gevent.sleep(0.01 * (3 - i)), order.append(i))) for i in range(3)])
print(order)
def echo(sock, _):
    sock.sendall(sock.recv(64).upper()); sock.close()
server = StreamServer(('127.0.0.1', 0), echo); server.start()
client = gevent.socket.create_connection(('127.0.0.1', server.server_port))
client.sendall(b'ping'); print(client.recv(64)); server.stop()
";

/// `tests/packages/<name>.txt` built into a fresh OUT; its verify must pass.
fn build_verified(name: &str) -> PathBuf {
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("big_packages")
        .join(name);
    let _ = std::fs::remove_dir_all(&scratch);
    let out = scratch.join("dist");
    let (report, _) = build_ok(&out, &format!("tests/packages/{name}.txt"), &[]);
    assert!(report.contains(" 0 failed"), "{report}");
    out
}

/// The names of OUT's linked modules that start with `prefix`.
fn linked(out: &Path, prefix: &str) -> Vec<String> {
    let manifest = dlstatic::python::verify::read_manifest(out).unwrap();
    (manifest.modules.into_iter())
        .filter(|m| m.name.starts_with(prefix))
        .map(|m| m.name)
        .collect()
}

/// What `code` prints in the static interpreter (empty root), which must be what the
/// dynamic interpreter of the same build prints.
fn same_in_both(out: &Path, code: &str, env: &[(&str, &str)]) -> String {
    let (static_text, dynamic_text) = static_and_dynamic(out, code, env);
    assert_eq!(
        static_text, dynamic_text,
        "static and dynamic output differ"
    );
    static_text
}

#[test]
#[ignore = "about 8 CPU minutes of C++ with LTO: make test-packages"]
fn rapidfuzz_built_with_cmake_lto_answers_as_the_dynamic_build() {
    let out = build_verified("rapidfuzz");
    let modules = linked(&out, "rapidfuzz.");
    for module in ["rapidfuzz.fuzz_cpp", "rapidfuzz.distance.metrics_cpp"] {
        assert!(
            modules.iter().any(|m| m == module),
            "{module} not linked: {modules:?}"
        );
    }
    let text = same_in_both(&out, RAPIDFUZZ_CODE, &[("RAPIDFUZZ_IMPLEMENTATION", "cpp")]);
    assert!(text.starts_with("96.55"), "{text}");
    let check = "CMake + GCC LTO; fuzz, process and distance answer as in the dynamic build";
    common::results::record("big_packages", "rapidfuzz", "3.14.6", check);
}

#[test]
#[ignore = "numpy and pandas: about 30 CPU minutes: make test-packages"]
fn pandas_groupby_answers_as_the_dynamic_build() {
    let out = build_verified("pandas");
    let modules = linked(&out, "pandas.");
    assert!(
        modules.len() >= 40,
        "{} pandas modules: {modules:?}",
        modules.len()
    );
    let text = same_in_both(&out, PANDAS_CODE, &[]);
    assert!(
        text.contains("Europe/Paris") && text.contains("2.2.3"),
        "{text}"
    );
    let check = format!(
        "{} modules; groupby, time zones, pivot table as in the dynamic build",
        modules.len()
    );
    common::results::record("big_packages", "pandas", "2.2.3", &check);
}

#[test]
#[ignore = "gevent, greenlet, zope.interface: about 6 minutes: make test-packages"]
fn gevent_loop_and_sockets_answer_as_the_dynamic_build() {
    let out = build_verified("gevent");
    assert!(!linked(&out, "gevent.libev").is_empty());
    let text = same_in_both(&out, GEVENT_CODE, &[]);
    assert!(
        text.contains("[2, 1, 0]") && text.contains("b'PING'"),
        "{text}"
    );
    let check = "libev loop, greenlet scheduling, a TCP echo as in the dynamic build";
    common::results::record("big_packages", "gevent", "24.11.1", check);
}

/// Dense linear algebra through OpenBLAS/LAPACK, a special function, and an optimiser
/// whose line search runs in scipy's compiled modules (Fortran among them).
const SCIPY_CODE: &str = "\
import numpy
from scipy import linalg, optimize, special
print(linalg.inv(numpy.array([[4.0, 7.0], [2.0, 6.0]])).round(12))
print(special.gamma([0.5, 5.0, 10.5]))
result = optimize.minimize(lambda x: (x[0] - 3) ** 2 + (x[1] + 1) ** 4, [0.0, 0.0], method='BFGS')
print(result.success, result.x.round(3))
print(optimize.minimize(optimize.rosen, [1.3, 0.7, 0.8], method='L-BFGS-B').x.round(4))
";

#[test]
#[ignore = "numpy and scipy (C, C++, Fortran): about 30 CPU minutes: make test-packages"]
fn scipy_linalg_special_optimize_answer_as_the_dynamic_build() {
    let out = build_verified("scipy");
    let modules = linked(&out, "scipy.");
    // L-BFGS-B is Fortran compiled by gfortran and linked by it (meson links a target
    // with Fortran sources with the Fortran compiler)
    assert!(
        modules.iter().any(|m| m == "scipy.optimize._lbfgsb"),
        "scipy.optimize._lbfgsb not linked: {modules:?}"
    );
    let text = same_in_both(&out, SCIPY_CODE, &[]);
    assert!(text.contains("[[ 0.6 -0.7]"), "{text}");
    let check = format!(
        "{} modules (Fortran among them); linalg.inv, special.gamma, optimize.minimize as in the dynamic build",
        modules.len()
    );
    common::results::record("big_packages", "scipy", "1.14.1", &check);
}

/// A certificate made with `openssl req -x509` (P-256, serial 4242): parsed, not made,
/// so both interpreters print the same fields.
const CERTIFICATE: &str = "-----BEGIN CERTIFICATE-----
MIIBmTCCAT+gAwIBAgICEJIwCgYIKoZIzj0EAwIwKzEWMBQGA1UEAwwNZGxzdGF0
aWMgdGVzdDERMA8GA1UECgwIZGxzdGF0aWMwHhcNMjYxMjAzMTYxNjA3WhcNMzYx
MTMwMTYxNjA3WjArMRYwFAYDVQQDDA1kbHN0YXRpYyB0ZXN0MREwDwYDVQQKDAhk
bHN0YXRpYzBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABKVRbtrlZtV95wQo60Se
gKUgBK6NJPynlxKQac44vq0bFQCPRMlKivDTasxjqOLDJjFtrdAnUw72uioDUmd0
K4GjUzBRMB0GA1UdDgQWBBRGFIgixIE6Jc96Sj8GgqjZqmmLljAfBgNVHSMEGDAW
gBRGFIgixIE6Jc96Sj8GgqjZqmmLljAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49
BAMCA0gAMEUCIQDvG3FxiiLggv0dXV27yckvz5zKuyamf8rVg0jOOu9eiwIgP/+a
90gfiq9N7kbHKwEGVo51FXJDBmqX89vUIH21E2o=
-----END CERTIFICATE-----
";

/// Fernet round trip, X.509 parsing and its signature check, and a cipher that only
/// OpenSSL's legacy provider has (Blowfish), which cryptography loads at import.
fn cryptography_code() -> String {
    format!(
        "\
import base64
from cryptography import x509
from cryptography.fernet import Fernet
from cryptography.hazmat.bindings._rust import openssl as rust_openssl
from cryptography.hazmat.decrepit.ciphers.algorithms import Blowfish
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, modes
print('legacy provider', rust_openssl._legacy_provider_loaded, rust_openssl.openssl_version_text()[:11])
fernet = Fernet(base64.urlsafe_b64encode(bytes(range(32))))
print(fernet.decrypt(fernet.encrypt(b'static secret')))
cert = x509.load_pem_x509_certificate(b'''{CERTIFICATE}''')
print(cert.subject.rfc4514_string(), cert.serial_number, cert.not_valid_before_utc)
print(cert.fingerprint(hashes.SHA256()).hex())
cert.public_key().verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(hashes.SHA256()))
print('signature ok')
encryptor = Cipher(Blowfish(bytes(16)), modes.ECB()).encryptor()
print((encryptor.update(bytes(8)) + encryptor.finalize()).hex())
"
    )
}

#[test]
#[ignore = "cryptography's Rust crates and OpenSSL built from source: make test-packages"]
fn cryptography_fernet_and_x509_with_openssl_providers_compiled_in() {
    let out = build_verified("cryptography");
    assert!(!linked(&out, "cryptography.hazmat.bindings._rust").is_empty());
    let text = same_in_both(&out, &cryptography_code(), &[]);
    assert!(
        text.starts_with("legacy provider True OpenSSL 3.0"),
        "{text}"
    );
    assert!(
        text.contains("b'static secret'")
            && text.contains("CN=dlstatic test")
            && text.contains("signature ok"),
        "{text}"
    );
    let libcrypto = common::planned_archives(&out, "libcrypto.a");
    assert!(
        libcrypto.len() == 1 && libcrypto[0].to_string_lossy().contains("/deps/openssl-"),
        "libcrypto.a: {libcrypto:?}"
    );
    let check = "Fernet, X.509 parse and signature, Blowfish through the legacy provider compiled into a libcrypto.a dlstatic built";
    common::results::record("big_packages", "cryptography", "44.0.0", check);
}

/// A unary call over a local port, both ends in one process: gRPC's core (C++, with its
/// bundled BoringSSL) under the Cython layer; and a status code that comes back.
const GRPCIO_CODE: &str = "\
from concurrent import futures
import grpc
def echo(request, context):
    if request == b'fail':
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, 'told to fail')
    return request[::-1]
handler = grpc.method_handlers_generic_handler('test.Echo', {'Call': grpc.unary_unary_rpc_method_handler(echo)})
server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
server.add_generic_rpc_handlers((handler,))
port = server.add_insecure_port('127.0.0.1:0')
server.start()
with grpc.insecure_channel(f'127.0.0.1:{port}') as channel:
    call = channel.unary_unary('/test.Echo/Call')
    print(call(b'static grpc', timeout=10))
    try:
        call(b'fail', timeout=10)
    except grpc.RpcError as error:
        print(error.code(), error.details())
server.stop(None)
print(grpc.__version__)
";

#[test]
#[ignore = "gRPC's C++ core and its bundled libraries: make test-packages"]
fn grpcio_unary_call_over_a_local_port_answers_as_the_dynamic_build() {
    let out = build_verified("grpcio");
    assert!(!linked(&out, "grpc._cython.cygrpc").is_empty());
    let text = same_in_both(&out, GRPCIO_CODE, &[]);
    assert_eq!(
        text,
        "b'cprg citats'\nStatusCode.INVALID_ARGUMENT told to fail\n1.68.1\n"
    );
    let check = "a unary call and an error status over a local port, as in the dynamic build";
    common::results::record("big_packages", "grpcio", "1.68.1", check);
}

/// matplotlib 3.9.2 (meson-python, C++, with Debian's FreeType and Qhull through
/// modules.txt's config settings): a figure with lines, a Qhull triangulation and text in
/// the bundled DejaVu Sans (by file name: the dynamic run may see a system DejaVu),
/// rendered by Agg; its pixels and PNG are printed so the two runs can be compared.
/// Qhull runs verbose (as `Triangulation` does under `python -v`): quiet, it opens
/// /dev/null, which the empty root lacks.
const MATPLOTLIB_CODE: &str = "\
import hashlib, io, os, shutil, tempfile
config = tempfile.mkdtemp(); os.environ['MPLCONFIGDIR'] = config
import matplotlib; matplotlib.use('Agg')
import matplotlib.pyplot as plt, numpy
from matplotlib import _qhull, ft2font
from matplotlib.font_manager import FontProperties
from matplotlib.tri import Triangulation
font = FontProperties(fname=os.path.join(matplotlib.get_data_path(), 'fonts/ttf/DejaVuSans.ttf'))
x, y = [0, 1, 0, 1, 0.5], [0, 0, 1, 1, 0.5]
mesh = Triangulation(x, y, _qhull.delaunay(x, y, 1)[0])
figure = plt.figure(figsize=(4, 3), dpi=100)
axes = figure.add_axes((0, 0, 1, 1)); axes.set_axis_off(); axes.set_xlim(-0.1, 1.1); axes.set_ylim(-0.1, 1.1)
axes.plot(numpy.linspace(0, 1, 100), 0.5 + 0.4 * numpy.sin(numpy.linspace(0, 6.3, 100)), color='red', linewidth=3)
axes.triplot(mesh, color='blue')
axes.text(0.05, 0.05, 'static Agg', fontproperties=font, fontsize=24)
figure.canvas.draw()
pixels = numpy.asarray(figure.canvas.buffer_rgba())
red = ((pixels[..., 0] > 200) & (pixels[..., 1] < 80)).sum()
blue = ((pixels[..., 2] > 200) & (pixels[..., 0] < 80)).sum()
dark = (pixels[..., :3].max(-1) < 80).sum()
png = io.BytesIO(); figure.savefig(png, format='png')
print('rgba', pixels.shape, hashlib.md5(pixels.tobytes()).hexdigest())
print('triangles', len(mesh.triangles), 'red', red > 500, 'blue', blue > 500, 'text', dark > 300)
print('png', png.getvalue()[:8], len(png.getvalue()) > 5000, hashlib.md5(png.getvalue()).hexdigest())
print('matplotlib', matplotlib.__version__, 'freetype', ft2font.__freetype_version__)
shutil.rmtree(config)
";

#[test]
#[ignore = "numpy, matplotlib, contourpy, kiwisolver, pillow: long C/C++ builds: make test-packages"]
fn matplotlib_agg_renders_as_the_dynamic_build() {
    let out = build_verified("matplotlib");
    // verify imported matplotlib in the payload as its root, and matplotlib wrote a font
    // cache under HOME (/root there): verify removes what it wrote
    assert!(
        !out.join("root").exists(),
        "verify left files in the payload"
    );
    let modules = linked(&out, "matplotlib.");
    for module in [
        "matplotlib.ft2font",
        "matplotlib._qhull",
        "matplotlib.backends._backend_agg",
    ] {
        assert!(
            modules.iter().any(|m| m == module),
            "{module} not linked: {modules:?}"
        );
    }
    let text = same_in_both(&out, MATPLOTLIB_CODE, &[]);
    for expected in [
        "rgba (300, 400, 4) ",
        "triangles 4 red True blue True text True",
        "png b'\\x89PNG\\r\\n\\x1a\\n' True ",
        "matplotlib 3.9.2 freetype 2.12.1",
    ] {
        assert!(text.contains(expected), "{expected}: {text}");
    }
    let check = format!(
        "{} modules (FreeType, Qhull from Debian); an Agg figure with text: same pixels and PNG as the dynamic build",
        modules.len()
    );
    common::results::record("big_packages", "matplotlib", "3.9.2", &check);
}
