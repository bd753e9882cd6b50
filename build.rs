// The target triple the `cc` crate needs when dlstatic compiles generated C at run time.
fn main() {
    println!(
        "cargo:rustc-env=DLSTATIC_TARGET={}",
        std::env::var("TARGET").unwrap()
    );
}
