//! Reading a gcc/clang command line the way the driver does: `@file` expansion,
//! which options take a separate argument, and which arguments are input files.
//! The capture wrapper uses this to decide whether a command links a shared object
//! and what went into it.

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};

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

/// Response files nested deeper than this are refused (`@a` naming itself, say).
const MAX_RESPONSE_FILE_DEPTH: usize = 32;
/// At most this many response files are read for one command.
const MAX_RESPONSE_FILES: usize = 10_000;
/// At most this much argument text comes out of them.
const MAX_EXPANDED_BYTES: usize = 64 << 20;

/// What one compiler command does, as far as capture cares.
#[derive(Debug, Default, Clone)]
pub struct CompilerCommand {
    /// The arguments after `@file` expansion.
    pub args: Vec<String>,
    /// `-o` value, if given.
    pub output: Option<String>,
    /// `-shared` was given and nothing stops the driver before linking.
    pub links_shared_object: bool,
    /// `-c`, `-S`, `-E` or the like: the driver compiles (or preprocesses) and links nothing.
    pub stops_before_link: bool,
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
    /// Inputs (indices into `inputs`) and `-l` names given between `--whole-archive`
    /// and `--no-whole-archive`: every member of such an archive is linked.
    pub whole_inputs: Vec<usize>,
    pub whole_libs: Vec<String>,
    /// Names the link starts out needing (`-u SYM`, `-Wl,--undefined=SYM`): archive
    /// members that define them are linked even if nothing else refers to them.
    pub undefined_roots: Vec<String>,
}

impl CompilerCommand {
    /// Follow a linker option (`-Wl,` or `-Xlinker` form, split at commas) for what
    /// changes which archive members the link takes.
    fn linker_option(&mut self, option: &str, whole: &mut bool) {
        let parts: Vec<&str> = option.split(',').collect();
        let mut i = 0;
        while i < parts.len() {
            match parts[i] {
                "--whole-archive" => *whole = true,
                "--no-whole-archive" => *whole = false,
                "-u" | "--undefined" if i + 1 < parts.len() => {
                    self.undefined_roots.push(parts[i + 1].to_string());
                    i += 1;
                }
                part => {
                    let root = part
                        .strip_prefix("--undefined=")
                        .or(part.strip_prefix("-u"));
                    self.undefined_roots
                        .extend(root.filter(|r| !r.is_empty()).map(String::from));
                }
            }
            i += 1;
        }
    }
}

/// Expand every `@file` argument recursively with gcc's quoting rules. An `@file` that
/// cannot be read is kept as it is, as gcc does. Nesting, the number of files read and
/// the size of the result are bounded (a few files naming each other twice over would
/// otherwise expand to gigabytes); past a bound, or in a file that is not UTF-8 text,
/// the command cannot be read and that is an error.
pub fn expand_response_files(args: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::with_capacity(args.len());
    let mut budget = Budget {
        files: MAX_RESPONSE_FILES,
        bytes: MAX_EXPANDED_BYTES,
    };
    expand_into(args, &mut out, 0, &mut budget)?;
    Ok(out)
}

/// What expansion may still read and produce.
struct Budget {
    files: usize,
    bytes: usize,
}

fn expand_into(
    args: &[String],
    out: &mut Vec<String>,
    depth: usize,
    budget: &mut Budget,
) -> Result<()> {
    for arg in args {
        let contents = arg
            .strip_prefix('@')
            .and_then(|path| std::fs::read(path).ok());
        let Some(bytes) = contents else {
            budget.bytes = budget.bytes.checked_sub(arg.len() + 1).with_context(|| {
                format!("response files expand to more than {} MiB of arguments (an @file named many times over?)", MAX_EXPANDED_BYTES >> 20)
            })?;
            out.push(arg.clone());
            continue;
        };
        if depth >= MAX_RESPONSE_FILE_DEPTH {
            bail!(
                "{arg}: response files nested deeper than {MAX_RESPONSE_FILE_DEPTH} (does one name itself?)"
            );
        }
        budget.files = budget.files.checked_sub(1).with_context(|| {
            format!("{arg}: more than {MAX_RESPONSE_FILES} response files read for one command (an @file named many times over?)")
        })?;
        let text = String::from_utf8(bytes).map_err(|_| {
            anyhow!("{arg}: response file is not UTF-8 text; dlstatic cannot read this command")
        })?;
        expand_into(&split_response_file(&text), out, depth + 1, budget)?;
    }
    Ok(())
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

/// For a compile with GCC LTO (`-flto`), `-ffat-lto-objects` (appended: the last one
/// wins over a `-fno-fat-lto-objects`, which CMake's IPO always passes): each object then
/// holds ordinary code beside the IR, which renames and links like any other (the IR,
/// whose names no rewriter can rename, is dropped at analysis). The build's own link
/// still uses the IR, so its output is what it would be without dlstatic.
pub fn fat_lto_flag(cmd: &CompilerCommand) -> Option<&'static str> {
    let lto = cmd
        .args
        .iter()
        .any(|a| a == "-flto" || a.starts_with("-flto="));
    let off = cmd
        .args
        .iter()
        .any(|a| a == "-fno-lto" || a == "-ffat-lto-objects");
    (lto && !off && !cmd.links_shared_object).then_some("-ffat-lto-objects")
}

/// Parse an (unexpanded) compiler command line.
pub fn parse(raw_args: &[String]) -> Result<CompilerCommand> {
    let args = expand_response_files(raw_args)?;
    let mut cmd = CompilerCommand::default();
    let mut shared = false;
    let mut language_override = false;
    let mut whole = false;
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        let next = args.get(i + 1).cloned();
        let takes_next = OPTIONS_WITH_SEPARATE_VALUE.contains(&arg) && next.is_some();
        match arg {
            "-shared" => shared = true,
            "-c" | "-S" | "-E" | "-M" | "-MM" | "-fsyntax-only" => cmd.stops_before_link = true,
            "-pthread" | "-fopenmp" | "-static-libstdc++" | "-static-libgcc" => {
                cmd.linker_flags.push(arg.to_string())
            }
            "-o" if takes_next => cmd.output = next.clone(),
            "-l" if takes_next => {
                cmd.whole_libs.extend(next.clone().filter(|_| whole));
                cmd.libs.extend(next.clone())
            }
            "-u" if takes_next => cmd.undefined_roots.extend(next.clone()),
            "-L" if takes_next => cmd.lib_dirs.extend(next.clone()),
            "-Xlinker" if takes_next => {
                let option = next.clone().unwrap();
                cmd.linker_option(&option, &mut whole);
                cmd.linker_flags.push(format!("-Wl,{option}"))
            }
            "-x" if takes_next => language_override = next.as_deref() != Some("none"),
            _ if takes_next => {}
            _ if arg.starts_with("-Wl,") => {
                cmd.linker_option(&arg[4..], &mut whole);
                cmd.linker_flags.push(arg.to_string())
            }
            _ if arg.starts_with("-l") => {
                if whole {
                    cmd.whole_libs.push(arg[2..].to_string());
                }
                cmd.libs.push(arg[2..].to_string())
            }
            _ if arg.starts_with("-u") && arg.len() > 2 => {
                cmd.undefined_roots.push(arg[2..].to_string())
            }
            _ if arg.starts_with("-L") => cmd.lib_dirs.push(arg[2..].to_string()),
            _ if arg.starts_with("-o") && arg.len() > 2 => cmd.output = Some(arg[2..].to_string()),
            _ if arg.starts_with("-x") && arg.len() > 2 => language_override = &arg[2..] != "none",
            "-" => {}
            _ if arg.starts_with('-') => {}
            _ => {
                if language_override || is_source_file(arg) {
                    cmd.sources.push(cmd.inputs.len());
                }
                if whole {
                    cmd.whole_inputs.push(cmd.inputs.len());
                }
                cmd.inputs.push(arg.to_string());
                cmd.input_positions.push(i);
            }
        }
        i += if takes_next { 2 } else { 1 };
    }
    cmd.links_shared_object = shared && !cmd.stops_before_link;
    cmd.args = args;
    Ok(cmd)
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
    fn response_files_are_bounded_and_must_be_text() {
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str| format!("@{}", dir.path().join(name).display());
        // each file names the next one twice: 2^20 expansions unless bounded
        for level in 0..20 {
            let next = at(&format!("r{}", level + 1));
            std::fs::write(
                dir.path().join(format!("r{level}")),
                format!("{next} {next}"),
            )
            .unwrap();
        }
        std::fs::write(dir.path().join("r20"), "-shared").unwrap();
        let error = expand_response_files(&[at("r0")]).unwrap_err().to_string();
        assert!(error.contains("more than 10000 response files"), "{error}");
        std::fs::write(dir.path().join("self"), at("self")).unwrap();
        let error = expand_response_files(&[at("self")])
            .unwrap_err()
            .to_string();
        assert!(error.contains("nested deeper than 32"), "{error}");
        std::fs::write(dir.path().join("latin1"), b"-o caf\xe9.so").unwrap();
        let error = parse(&[at("latin1")]).unwrap_err().to_string();
        assert!(error.contains("not UTF-8"), "{error}");
        assert_eq!(
            expand_response_files(&strings(&["@missing", "-c"])).unwrap(),
            strings(&["@missing", "-c"])
        );
    }

    #[test]
    fn response_file_quoting_follows_gcc() {
        let got = split_response_file("a 'b c' \"d \\\" e\" f\\ g\n\n'' h");
        assert_eq!(got, strings(&["a", "b c", "d \" e", "f g", "", "h"]));
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
        ]))
        .unwrap();
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
        assert!(
            !parse(&strings(&["-shared", "-c", "a.c", "-o", "a.o"]))
                .unwrap()
                .links_shared_object
        );
        assert!(
            !parse(&strings(&["a.o", "-o", "prog"]))
                .unwrap()
                .links_shared_object
        );
    }

    #[test]
    fn sources_in_a_link_are_found_and_split_off() {
        let cmd = parse(&strings(&[
            "-O2", "-shared", "-fPIC", "p.c", "q.o", "-o", "p.so", "-lz", "-DX=1",
        ]))
        .unwrap();
        assert_eq!(cmd.sources, vec![0]);
        let compile = compile_only_args(&cmd, "p.c", "/tmp/p.o");
        assert_eq!(
            compile,
            strings(&["-O2", "-fPIC", "-DX=1", "-c", "p.c", "-o", "/tmp/p.o"])
        );
    }
}
