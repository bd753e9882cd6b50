//! `capture::compiler_args`: the input is NUL-separated texts; the first is the command
//! line (one argument per line), each other one a response file the command may name
//! as `@0`, `@1`, … (files in the current directory, a scratch one). Checked: `split_response_file`
//! reads back any argument list quoted the gcc way, and `parse` keeps its indices
//! consistent with the expanded arguments.

use dlstatic::capture::compiler_args::{
    CompilerCommand, compile_only_args, parse, split_response_file,
};

/// Quote every character with a backslash: the one quoting gcc's reader must undo.
fn quote(arg: &str) -> String {
    let escaped: String = arg.chars().flat_map(|c| ['\\', c]).collect();
    if escaped.is_empty() {
        "''".to_string()
    } else {
        escaped
    }
}

fn check_split_round_trip(text: &str) {
    let args = split_response_file(text);
    let quoted: Vec<String> = args.iter().map(|a| quote(a)).collect();
    assert_eq!(
        split_response_file(&quoted.join(" \n")),
        args,
        "quoted round trip"
    );
}

fn check_indices(cmd: &CompilerCommand) {
    assert_eq!(cmd.inputs.len(), cmd.input_positions.len());
    for (input, &at) in cmd.inputs.iter().zip(&cmd.input_positions) {
        assert_eq!(&cmd.args[at], input, "input position");
    }
    assert!(
        cmd.sources.iter().all(|&s| s < cmd.inputs.len()),
        "source index"
    );
}

/// Only `@N` names in the scratch directory are files the fuzzer wrote: `@/dev/zero`
/// or `@../x` would read the machine, not the input.
fn names_only_scratch_files(args: &[String]) -> bool {
    args.iter()
        .filter_map(|a| a.strip_prefix('@'))
        .all(|path| !path.contains('/') && !path.starts_with('.'))
}

pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\0');
    let argv: Vec<String> = parts
        .next()
        .unwrap_or("")
        .lines()
        .map(String::from)
        .collect();
    let files: Vec<&str> = parts.collect();
    let file_args: Vec<Vec<String>> = files.iter().map(|f| split_response_file(f)).collect();
    if !names_only_scratch_files(&argv) || !file_args.iter().all(|a| names_only_scratch_files(a)) {
        return;
    }
    files.iter().for_each(|f| check_split_round_trip(f));
    if !argv.iter().any(|a| a.starts_with('@')) {
        // nothing to expand: no files to write (the fast path for most inputs)
        // (a command that cannot be read is an error, which is fine: no panic)
        if let Ok(cmd) = parse(&argv) {
            check_command(&cmd);
        }
        return;
    }
    // `@N` is relative, also inside response files: run in a directory holding just these
    // (one directory for the process, its files rewritten per input: creating and
    // removing a directory per input made this target I/O-bound)
    let dir = response_dir(&files);
    // libFuzzer's corpus and artifact paths may be relative: back to where it started
    let home = std::env::current_dir().expect("current directory");
    std::env::set_current_dir(dir).expect("enter scratch directory");
    let cmd = parse(&argv);
    std::env::set_current_dir(home).expect("leave scratch directory");
    if let Ok(cmd) = cmd {
        check_command(&cmd);
    }
}

/// The process's response-file directory holding exactly `files` as `0`, `1`, …
fn response_dir(files: &[&str]) -> &'static std::path::Path {
    static WRITTEN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = crate::scratch_dir();
    for (index, contents) in files.iter().enumerate() {
        std::fs::write(dir.join(index.to_string()), contents).expect("write response file");
    }
    let before = WRITTEN.swap(files.len(), std::sync::atomic::Ordering::Relaxed);
    for stale in files.len()..before {
        std::fs::remove_file(dir.join(stale.to_string())).expect("remove response file");
    }
    dir
}

fn check_command(cmd: &CompilerCommand) {
    check_indices(cmd);
    if let Some(source) = cmd.sources.first() {
        compile_only_args(cmd, &cmd.inputs[*source], "out.o");
    }
}
