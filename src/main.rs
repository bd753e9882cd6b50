fn main() {
    std::process::exit(dlstatic::cli::main());
}
