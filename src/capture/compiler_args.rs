//! Reading a gcc/clang command line the way the driver does: `@file` expansion,
//! which options take a separate argument, and which arguments are input files.
//! The capture wrapper uses this to decide whether a command links a shared object
//! and what went into it.

use std::path::Path;

/// gcc options whose value may be the next argument (`-o out`, `-I dir`, ...).
const OPTIONS_WITH_SEPARATE_VALUE: &[&str] = &[
    "-o",
    "-x",
    "-I",
    "-L",
    "-l",
    "-D",
    "-U",
    "-include",
    "-imacros",
    "-iprefix",
    "-iwithprefix",
    "-iwithprefixbefore",
    "-isystem",
    "-idirafter",
    "-iquote",
    "-isysroot",
    "-imultilib",
    "-MF",
    "-MT",
    "-MQ",
    "-Xlinker",
    "-Xassembler",
    "-Xpreprocessor",
    "-T",
    "-u",
    "-e",
    "-z",
    "-aux-info",
    "--param",
    "-dumpbase",
    "-dumpdir",
    "-B",
    "--sysroot",
    "-specs",
    "-wrapper",
];

/// File extensions the driver compiles rather than passes to the linker.
const SOURCE_EXTENSIONS: &[&str] = &[
    "c", "cc", "cp", "cpp", "cxx", "c++", "C", "CPP", "i", "ii", "m", "mi", "mm", "M", "mii", "s",
    "S", "sx", "f", "for", "f90", "f95", "f03", "F", "F90",
];

/// gcc (libiberty's expandargv) reads at most this many response files per command: it
/// guards against `@a` naming itself, once (endless) or twice (exponential).
const MAX_RESPONSE_FILES: usize = 2000;

/// What one compiler command does, as far as capture cares.
#[derive(Debug, Default, Clone)]
pub struct CompilerCommand {
    /// The arguments after `@file` expansion.
    pub args: Vec<String>,
    /// `-o` value, if given.
    pub output: Option<String>,
    /// `-shared` was given and nothing stops the driver before linking.
    pub links_shared_object: bool,
    /// Positional inputs in command-line order.
    pub inputs: Vec<String>,
    /// Where each input sits in `args`.
    pub input_positions: Vec<usize>,
    /// Inputs the driver compiles itself (`gcc -shared foo.c`).
    pub sources: Vec<usize>,
    /// `-lNAME` values in order (`:libfoo.a` forms kept as given).
    pub libs: Vec<String>,
    /// `-LDIR` values in order.
    pub lib_dirs: Vec<String>,
    /// Options passed to the linker (`-Wl,...`, `-Xlinker x` as `-Wl,x`, `-pthread`, ...).
    pub linker_flags: Vec<String>,
}

/// Expand every `@file` argument recursively with gcc's quoting rules. An `@file` that
/// cannot be read, or one past the first MAX_RESPONSE_FILES, is kept as it is, as gcc does.
pub fn expand_response_files(args: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut files_left = MAX_RESPONSE_FILES;
    expand_into(args, &mut out, &mut files_left);
    out
}

fn expand_into(args: &[String], out: &mut Vec<String>, files_left: &mut usize) {
    for arg in args {
        let contents = match arg.strip_prefix('@') {
            Some(path) if *files_left > 0 => std::fs::read_to_string(path).ok(),
            _ => None,
        };
        match contents {
            Some(text) => {
                *files_left -= 1;
                expand_into(&split_response_file(&text), out, files_left)
            }
            None => out.push(arg.clone()),
        }
    }
}

/// libiberty's `buildargv`: whitespace separates, single and double quotes group,
/// a backslash takes the next character literally (inside double quotes too).
pub fn split_response_file(text: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut in_arg = false;
    let (mut single, mut double, mut escaped) = (false, false, false);
    for c in text.chars() {
        if escaped {
            current.push(c);
            escaped = false;
            in_arg = true;
        } else if c == '\\' && !single {
            escaped = true;
            in_arg = true;
        } else if single {
            if c == '\'' {
                single = false
            } else {
                current.push(c)
            }
        } else if double {
            if c == '"' {
                double = false
            } else {
                current.push(c)
            }
        } else if c == '\'' {
            single = true;
            in_arg = true;
        } else if c == '"' {
            double = true;
            in_arg = true;
        } else if c.is_whitespace() {
            if in_arg {
                args.push(std::mem::take(&mut current));
                in_arg = false;
            }
        } else {
            current.push(c);
            in_arg = true;
        }
    }
    if in_arg {
        args.push(current);
    }
    args
}

/// Parse an (unexpanded) compiler command line.
pub fn parse(raw_args: &[String]) -> CompilerCommand {
    let args = expand_response_files(raw_args);
    let mut cmd = CompilerCommand::default();
    let mut shared = false;
    let mut stops_before_link = false;
    let mut language_override = false;
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        let next = args.get(i + 1).cloned();
        let takes_next = OPTIONS_WITH_SEPARATE_VALUE.contains(&arg) && next.is_some();
        match arg {
            "-shared" => shared = true,
            "-c" | "-S" | "-E" | "-M" | "-MM" | "-fsyntax-only" => stops_before_link = true,
            "-pthread" | "-fopenmp" | "-static-libstdc++" | "-static-libgcc" => {
                cmd.linker_flags.push(arg.to_string())
            }
            "-o" if takes_next => cmd.output = next.clone(),
            "-l" if takes_next => cmd.libs.extend(next.clone()),
            "-L" if takes_next => cmd.lib_dirs.extend(next.clone()),
            "-Xlinker" if takes_next => cmd
                .linker_flags
                .push(format!("-Wl,{}", next.clone().unwrap())),
            "-x" if takes_next => language_override = next.as_deref() != Some("none"),
            _ if takes_next => {}
            _ if arg.starts_with("-Wl,") => cmd.linker_flags.push(arg.to_string()),
            _ if arg.starts_with("-l") => cmd.libs.push(arg[2..].to_string()),
            _ if arg.starts_with("-L") => cmd.lib_dirs.push(arg[2..].to_string()),
            _ if arg.starts_with("-o") && arg.len() > 2 => cmd.output = Some(arg[2..].to_string()),
            _ if arg.starts_with("-x") && arg.len() > 2 => language_override = &arg[2..] != "none",
            "-" => {}
            _ if arg.starts_with('-') => {}
            _ => {
                if language_override || is_source_file(arg) {
                    cmd.sources.push(cmd.inputs.len());
                }
                cmd.inputs.push(arg.to_string());
                cmd.input_positions.push(i);
            }
        }
        i += if takes_next { 2 } else { 1 };
    }
    cmd.links_shared_object = shared && !stops_before_link;
    cmd.args = args;
    cmd
}

fn is_source_file(path: &str) -> bool {
    Path::new(path)
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| SOURCE_EXTENSIONS.contains(&e))
}

/// The arguments that compile one of this command's sources to `object` with `-c`:
/// the original options minus output, inputs and link-only options.
pub fn compile_only_args(cmd: &CompilerCommand, source: &str, object: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    let args = &cmd.args;
    while i < args.len() {
        let arg = args[i].as_str();
        let takes_next = OPTIONS_WITH_SEPARATE_VALUE.contains(&arg) && i + 1 < args.len();
        let link_only = matches!(arg, "-shared" | "-o" | "-l" | "-L" | "-Xlinker")
            || arg.starts_with("-Wl,")
            || (arg.starts_with("-l") || arg.starts_with("-L") || arg.starts_with("-o"))
            || (!arg.starts_with('-') && cmd.inputs.iter().any(|input| input == arg));
        if !link_only {
            out.push(arg.to_string());
            if takes_next {
                out.push(args[i + 1].clone());
            }
        }
        i += if takes_next { 2 } else { 1 };
    }
    out.extend([
        "-c".to_string(),
        source.to_string(),
        "-o".to_string(),
        object.to_string(),
    ]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn response_file_quoting_follows_gcc() {
        let got = split_response_file("a 'b c' \"d \\\" e\" f\\ g\n\n'' h");
        assert_eq!(got, strings(&["a", "b c", "d \" e", "f g", "", "h"]));
    }

    /// Found by fuzzing (target compiler_args): a response file naming itself twice
    /// was expanded 2^32 times before the depth limit stopped it.
    #[test]
    fn a_response_file_naming_itself_twice_stops() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r");
        let at = format!("@{}", path.display());
        std::fs::write(&path, format!("{at} a.o {at}")).unwrap();
        let args = expand_response_files(std::slice::from_ref(&at));
        assert_eq!(
            args.iter().filter(|a| *a == "a.o").count(),
            MAX_RESPONSE_FILES
        );
        assert_eq!(
            args.iter().filter(|a| **a == at).count(),
            MAX_RESPONSE_FILES + 1
        );
    }

    #[test]
    fn shared_link_inputs_libs_and_output() {
        let cmd = parse(&strings(&[
            "-shared",
            "-o",
            "x.so",
            "a.o",
            "-L",
            "/opt/lib",
            "-lz",
            "-l",
            "m",
            "libb.a",
            "-Wl,-soname,x.so.1",
            "-Xlinker",
            "--as-needed",
            "-I",
            "inc.o",
            "-pthread",
        ]));
        assert!(cmd.links_shared_object);
        assert_eq!(cmd.output.as_deref(), Some("x.so"));
        assert_eq!(cmd.inputs, strings(&["a.o", "libb.a"]));
        assert_eq!(cmd.libs, strings(&["z", "m"]));
        assert_eq!(cmd.lib_dirs, strings(&["/opt/lib"]));
        assert_eq!(
            cmd.linker_flags,
            strings(&["-Wl,-soname,x.so.1", "-Wl,--as-needed", "-pthread"])
        );
    }

    #[test]
    fn compile_step_is_not_a_link() {
        assert!(!parse(&strings(&["-shared", "-c", "a.c", "-o", "a.o"])).links_shared_object);
        assert!(!parse(&strings(&["a.o", "-o", "prog"])).links_shared_object);
    }

    #[test]
    fn sources_in_a_link_are_found_and_split_off() {
        let cmd = parse(&strings(&[
            "-O2", "-shared", "-fPIC", "p.c", "q.o", "-o", "p.so", "-lz", "-DX=1",
        ]));
        assert_eq!(cmd.sources, vec![0]);
        let compile = compile_only_args(&cmd, "p.c", "/tmp/p.o");
        assert_eq!(
            compile,
            strings(&["-O2", "-fPIC", "-DX=1", "-c", "p.c", "-o", "/tmp/p.o"])
        );
    }
}
