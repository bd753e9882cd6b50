//! Command line: `dlstatic cc|c++` (the wrapper, arguments passed through untouched),
//! `capture` and `link`.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args, Parser, Subcommand};

use crate::audit::{self, Severity};
use crate::capture;
use crate::deploy;
use crate::deps;
use crate::link;
use crate::plan::{ModuleSummary, Plan, ProgramSettings, Request, Source};
use crate::python::build::{self, BuildOptions};
use crate::python::verify;
use crate::workdir::LinkWork;

#[derive(Parser)]
#[command(
    name = "dlstatic",
    version,
    about = "Link a program and the shared objects it dlopens into one static executable",
    long_about = "Link a program and the shared objects it dlopens into one static executable.\n\n\
Build your plugins (or Python extension modules) under capture, then link:\n\n  \
dlstatic capture --db db -- make plugins      # every `cc -shared` link is recorded\n  \
dlstatic link --db db -o host-static host.o    # renamed, registered, linked -static\n\n\
The static binary keeps calling dlopen(\"plugins/a.so\") as before; the runtime shim answers\n\
from the modules linked into it, matched by md5 (or by a stub file holding the id, see\n\
OUT.km/<module>.km.id). No shared object is ever loaded.\n\n\
Compiler wrapper: `dlstatic cc ARGS…` / `dlstatic c++ ARGS…` / `dlstatic fc ARGS…` run \
$DLSTATIC_REAL_CC / $DLSTATIC_REAL_CXX / $DLSTATIC_REAL_FC (default cc / c++ / gfortran) and \
record shared links into $DLSTATIC_DB; compiles go through $DLSTATIC_CC_LAUNCHER if set.\n\n\
Environment of the static binary: DLSTATIC_DEBUG=1 logs every dl* call to stderr; \
DLSTATIC_FALLBACK=1 hands paths that are not linked in to the real loader."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build CPython under capture and turn it into one static interpreter with every
    /// stdlib extension module linked in
    #[command(
        after_help = "Output (OUT, default dist/): bin/python3.11 (+ python3, python), lib/python3.11/ with
one id stub per module in lib-dynload/, etc/ with minimal hosts, passwd, group, nsswitch.conf.
OUT.km/ holds logs/, link/ (per-module work files), manifest.json. OUT is replaced only when
every step, including `verify`, worked; a build whose inputs (CPython source, modules.txt and
its local trees, skip list, options, dlstatic itself) are those OUT was built from does nothing.
The CPython build is cached in ~/.cache/dlstatic/cpython/<source md5>/ ($DLSTATIC_CACHE), each
package from an index or a local tree in ~/.cache/dlstatic/packages/, shared by every OUT.
Packages build up to --jobs at a time, each logging to OUT.km/packages/logs/<name>.log.
Exit code: 0 built (or up to date), 1 failed (OUT left as it was), 3 built without the
packages that failed (--keep-going; the summary names each with its cause and log).
Example: make python-src && dlstatic build --out dist && chroot dist /bin/python3 -c 'import ssl'"
    )]
    Build(BuildArgs),
    /// Turn a payload into one deployable artefact (see README, "Deploy")
    #[command(
        after_help = "FORMAT: single (one executable), tar, oci (an OCI image layout directory), oci-archive,\n\
lambda (an AWS Lambda function zip), initramfs (gzip'd newc cpio; /init is the interpreter).\n\
Same OUT and options give a byte-identical artefact.\n\
Example: dlstatic package dist --format oci -o image && skopeo inspect oci:image:latest"
    )]
    Package(PackageArgs),
    /// Explain every symbol conflict and everything that blocks or changes a static link
    #[command(
        after_help = "The audit reports on exactly the link `dlstatic link` would do with the same arguments\n\
(the same Plan: modules, objects, system libraries down to the archive members pulled).\n\
Findings have a kind, a severity (error, warning, info), the modules and symbols involved\n\
and a sentence saying what dlstatic does or what to do. Kinds: duplicate-definition,\n\
cross-module-reference, ambiguous-reference, unresolved-symbol, missing-static-library,\n\
missing-export, duplicate-basename, unlinkable-object, lto-object, constructor, dlopen-call, nss-call.\n\
--json prints the report as documented in docs/audit.md.\n\
Exit code: 0 clean, 1 errors (or warnings with --strict), 2 bad usage or unreadable input.\n\
Example: dlstatic audit --db db host.o -- -lm"
    )]
    Audit {
        #[command(flatten)]
        inputs: LinkInputs,
        /// Print the report as JSON
        #[arg(long)]
        json: bool,
        /// Warnings fail too (exit 1)
        #[arg(long)]
        strict: bool,
    },
    /// Print the link plan: which modules, objects, system libraries and archive members
    /// a link with these arguments takes
    #[command(after_help = "Example: dlstatic plan --db db --json host.o -- -lm")]
    Plan {
        #[command(flatten)]
        inputs: LinkInputs,
        /// Print the plan as JSON (the form `OUT.km/plan.json` keeps)
        #[arg(long)]
        json: bool,
    },
    /// Run OUT's interpreter in an empty root holding only OUT; import every module and
    /// dlsym every export; print a table, exit 1 on any failure
    Verify {
        /// A payload made by `dlstatic build`
        #[arg(value_name = "OUT")]
        out: PathBuf,
    },
    /// Run CMD with CC, CXX, FC, LDSHARED and LDCXXSHARED pointing at the dlstatic wrapper
    #[command(
        after_help = "Example: dlstatic capture --db db -- sh -c 'cc -fPIC -c p.c && cc -shared p.o -o p.so'\n\
Compilers called by name (cc, gcc, g++, clang, gfortran, f77, f95, <triplet>-gcc…) are\n\
captured too: a directory of links under those names goes first on CMD's PATH.\n\
Exit code: CMD's. A CC/CXX/FC already set in the environment becomes the real compiler\n\
(CC=\"ccache gcc\": ccache becomes the launcher for compiles, gcc the compiler)."
    )]
    Capture {
        /// Capture db directory (created if missing)
        #[arg(long)]
        db: PathBuf,
        /// Run compiles through a compiler cache or distributor: ccache, sccache,
        /// distcc, or a program's path (links run the compiler itself and are captured)
        #[arg(long, value_name = "LAUNCHER")]
        cc_launcher: Option<String>,
        /// The build command and its arguments
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Rename, register and statically link every captured shared object with MAIN_INPUTs
    #[command(
        after_help = "MAIN_INPUTs are passed to the compiler driver as given: objects, archives, -l flags.\n\
LINKER_ARGS after `--` go last on the link line.\n\
Work files (per module .km.json, .km.symmap, .km.symbols.c, .km.a, .km.id; plan.json, link logs\n\
and map) go to OUT.km/.\n\
Example: dlstatic link --db db -o host-static host.o -- -lm"
    )]
    Link {
        /// The static executable to write
        #[arg(short = 'o', value_name = "OUT")]
        output: PathBuf,
        #[command(flatten)]
        inputs: LinkInputs,
    },
}

#[derive(Args)]
struct BuildArgs {
    /// Third-party packages to link in: pip requirement lines (pip freeze output
    /// works), `-r FILE`, or Kontain's `<name> <version> [<url>] ["<build deps>"]`
    #[arg(long, value_name = "FILE")]
    modules: Option<PathBuf>,
    /// CPython source: an unpacked tree or a .tar.gz/.tar.xz [default: newest
    /// python3.11_*.orig.tar.* in ~/.cache/dlstatic/src, fetched by `make python-src`]
    #[arg(long, value_name = "DIR|TARBALL")]
    python_src: Option<PathBuf>,
    /// Stdlib modules to leave out, one per line [default: the built-in copy of
    /// extensions/skip_builtins.txt]
    #[arg(long, value_name = "FILE")]
    skip: Option<PathBuf>,
    /// The payload directory
    #[arg(long, value_name = "DIR", default_value = "dist")]
    out: PathBuf,
    /// Parallel jobs: CPython's make, and the packages of modules.txt, built up to N
    /// at a time, each with its share of the N jobs
    #[arg(long, value_name = "N", default_value_t = default_jobs(), value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    jobs: usize,
    /// Keep the original .so files in lib-dynload instead of id stubs
    #[arg(long)]
    keep_so: bool,
    /// Keep test/, idlelib, tkinter, turtledemo and ensurepip in the payload
    #[arg(long)]
    full_stdlib: bool,
    /// Do not run `verify` on the result
    #[arg(long)]
    no_verify: bool,
    /// Linker for the final link: bfd, gold, lld or mold (`-fuse-ld=`) [default: the
    /// compiler's]
    #[arg(long, value_name = "NAME")]
    linker: Option<String>,
    /// An extra argument for the final link, e.g. --link-arg=-Wl,--gc-sections (repeatable)
    #[arg(long = "link-arg", value_name = "ARG", allow_hyphen_values = true)]
    link_args: Vec<String>,
    /// Run every extension module's constructors at start-up instead of at its
    /// first import (see `dlstatic link --eager-constructors`)
    #[arg(long)]
    eager_constructors: bool,
    /// Link a static-pie executable (glibc's -static-pie): loaded at a random address
    #[arg(long)]
    pie: bool,
    /// Link only the libc functions something calls: ctypes' CDLL(None) and cffi's
    /// ffi.dlopen(None) then miss the rest of glibc (the interpreter is ~0.6 MB smaller)
    #[arg(long)]
    no_libc_exports: bool,
    /// Keep packages' own test packages (directories named `tests` below
    /// site-packages) and their extension modules: linked, verified and shipped
    #[arg(long)]
    keep_tests: bool,
    /// Print the wall time of each stage at the end
    #[arg(long)]
    timings: bool,
    /// Try every package even when one fails to build: OUT gets the payload of the
    /// packages that built, the summary names each failure with its log, and the exit
    /// status is 3
    #[arg(long)]
    keep_going: bool,
    /// Run the packages' compiles through a compiler cache or distributor: ccache,
    /// sccache, distcc, or a program's path (see `dlstatic capture --help`)
    #[arg(long, value_name = "LAUNCHER")]
    cc_launcher: Option<String>,
    /// Do not build missing static libraries from their Debian source packages
    /// (~/.cache/dlstatic/deps/, docs/deps.md): a missing libfoo.a stays an error
    #[arg(long)]
    no_build_deps: bool,
}

impl From<BuildArgs> for BuildOptions {
    fn from(a: BuildArgs) -> BuildOptions {
        BuildOptions {
            modules: a.modules,
            python_src: a.python_src,
            skip: a.skip,
            out: a.out,
            jobs: a.jobs,
            keep_so: a.keep_so,
            full_stdlib: a.full_stdlib,
            verify: !a.no_verify,
            linker: a.linker,
            link_args: a.link_args,
            eager_constructors: a.eager_constructors,
            pie: a.pie,
            libc_exports: !a.no_libc_exports,
            keep_tests: a.keep_tests,
            timings: a.timings,
            keep_going: a.keep_going,
            cc_launcher: a.cc_launcher,
            build_deps: !a.no_build_deps,
        }
    }
}

/// `dlstatic package`'s arguments.
#[derive(Args)]
struct PackageArgs {
    /// A payload made by `dlstatic build`
    #[arg(value_name = "OUT")]
    out: PathBuf,
    #[arg(long, value_enum)]
    format: deploy::Format,
    /// The artefact to write (a directory for --format oci)
    #[arg(short = 'o', value_name = "PATH")]
    output: PathBuf,
    /// A directory of your own Python code, put on sys.path
    #[arg(long, value_name = "DIR")]
    app: Option<PathBuf>,
    /// The Lambda handler (AWS's `_HANDLER` overrides it at run time)
    #[arg(long, value_name = "MODULE.FUNCTION")]
    handler: Option<String>,
    /// The module to run as `python -m MODULE`: /init's program (initramfs), the image's
    /// entry point (oci)
    #[arg(long, value_name = "MODULE")]
    entry: Option<String>,
    /// The OCI image's tag
    #[arg(long, default_value = "latest")]
    tag: String,
}

impl From<PackageArgs> for deploy::PackageOptions {
    fn from(a: PackageArgs) -> deploy::PackageOptions {
        deploy::PackageOptions {
            out: a.out,
            format: a.format,
            output: a.output,
            app: a.app,
            handler: a.handler,
            entry: a.entry,
            tag: a.tag,
        }
    }
}

/// What `link`, `audit` and `plan` share: the modules and the main program.
#[derive(Args)]
struct LinkInputs {
    /// Capture db directory
    #[arg(long)]
    db: PathBuf,
    /// Take only captured objects whose path or basename matches GLOB (repeatable)
    #[arg(long, value_name = "GLOB")]
    only: Vec<String>,
    /// Run every module's constructors at program start (as a plain static link
    /// would) instead of at the module's first dlopen (as the dynamic loader does)
    #[arg(long)]
    eager_constructors: bool,
    /// Link a static-pie executable (glibc's -static-pie): loaded at a random address
    #[arg(long)]
    pie: bool,
    /// Do not force glibc's public functions into the link: dlopen(NULL) and
    /// dlopen("libc.so.6") then offer only the libc functions something calls
    #[arg(long)]
    no_libc_exports: bool,
    /// Do not build missing static libraries from their Debian source packages (`link`
    /// builds them into ~/.cache/dlstatic/deps/; `audit` and `plan` say which it would build)
    #[arg(long)]
    no_build_deps: bool,
    /// Objects, archives and -l flags of the main program, then optionally
    /// `-- LINKER_ARGS…` for the end of the final link line
    #[arg(value_name = "MAIN_INPUT", allow_hyphen_values = true)]
    main_inputs: Vec<std::ffi::OsString>,
}

impl LinkInputs {
    /// The plan for these inputs, with missing libraries built (or only named) as `deps`
    /// says; `flags` are this command's own switches, which clap takes as inputs when
    /// they follow one (MAIN_INPUTs may start with '-': `-lm`).
    fn plan(
        mut self,
        work: &LinkWork,
        flags: &mut [(&str, &mut bool)],
        deps: deps::Mode,
    ) -> Result<deps::Outcome> {
        let mut no_build_deps = self.no_build_deps;
        // the plan and its JSON hold main inputs as text: name the one that is not
        let mut main_inputs = (std::mem::take(&mut self.main_inputs).into_iter())
            .map(|arg| arg.into_string())
            .collect::<Result<Vec<String>, _>>()
            .map_err(|arg| anyhow::anyhow!("MAIN_INPUT {arg:?}: not UTF-8 text"))?;
        // this struct's own switches too (`-lm --no-build-deps`)
        let mut own = [("--no-build-deps", &mut no_build_deps)];
        main_inputs.retain(|arg| !set_switch(arg, flags) && !set_switch(arg, &mut own));
        let linker_args = match main_inputs.iter().position(|a| a == "--") {
            Some(at) => main_inputs.split_off(at).split_off(1),
            None => Vec::new(),
        };
        if main_inputs.is_empty() {
            bail!(
                "no MAIN_INPUT given before `--` (the main program's objects, archives or -l flags)"
            );
        }
        let program = ProgramSettings {
            main_inputs,
            linker_args,
            eager_constructors: self.eager_constructors,
            pie: self.pie,
            libc_exports: !self.no_libc_exports,
        };
        let deps = if no_build_deps { deps::Mode::Off } else { deps };
        deps::plan(deps, |dep_prefixes| {
            Plan::build(&Request {
                sources: vec![Source {
                    db: self.db.clone(),
                    ids: None,
                }],
                only: self.only.clone(),
                exclude: Vec::new(),
                program: program.clone(),
                dep_prefixes: dep_prefixes.to_vec(),
                work,
            })
        })
    }
}

/// Sets the switch among `switches` that `arg` names; whether there was one.
fn set_switch(arg: &str, switches: &mut [(&str, &mut bool)]) -> bool {
    match switches.iter_mut().find(|(name, _)| *name == arg) {
        Some((_, set)) => {
            **set = true;
            true
        }
        None => false,
    }
}

/// Runs the command line; returns the process exit code.
pub fn main() -> i32 {
    let os_args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // (a non-UTF-8 argument is seen through a lossy copy: the wrapper hands the real
    // compiler the original, and refuses to capture what it cannot read)
    let args: Vec<String> = os_args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let readable = os_args.iter().all(|a| a.to_str().is_some());
    // The wrapper takes the compiler's arguments verbatim (including --help).
    let wrapped = capture::invocation(&args);
    let result = match &wrapped {
        Some(compiler) if readable => capture::run_wrapper(compiler),
        Some(compiler) => capture::run_wrapper_unreadable(
            compiler,
            &os_args[os_args.len() - compiler.args.len()..],
        ),
        None => run(Cli::parse_from(os_args)),
    };
    let wrapper = wrapped.map(|compiler| compiler.driver);
    match result {
        Ok(code) => code,
        Err(error) => {
            let prefix = match wrapper {
                Some(driver) => format!("dlstatic {}", driver.name()),
                None => "dlstatic".to_string(),
            };
            eprintln!("{prefix}: error: {error:#}");
            1
        }
    }
}

fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Build(options) => build::build(&options.into()).map(|built| match built {
            build::Built::Complete => 0,
            build::Built::Partial => build::PARTIAL_EXIT_CODE,
        }),
        Command::Audit {
            inputs,
            json,
            strict,
        } => audit_command(inputs, json, strict),
        Command::Plan { inputs, mut json } => {
            let scratch = tempfile::tempdir()?;
            let work = LinkWork::at(scratch.path().to_path_buf());
            let flags = &mut [("--json", &mut json)];
            let summary = inputs
                .plan(&work, flags, deps::Mode::Describe)?
                .plan
                .summary();
            match json {
                true => println!("{}", serde_json::to_string_pretty(&summary)?),
                false => print!("{}", summary.render_text()),
            }
            Ok(0)
        }
        Command::Package(args) => deploy::package(&args.into()).map(|()| 0),
        Command::Verify { out } => {
            let manifest = verify::read_manifest(&out)?;
            verify::verify(&out, &manifest).map(|_| 0)
        }
        Command::Capture {
            db,
            cc_launcher,
            command,
        } => capture::run_capture(&db, &command, cc_launcher.as_deref()),
        Command::Link { output, inputs } => link_command(&output, inputs),
    }
}

/// `dlstatic audit`: exit 1 on errors (or warnings with --strict), 2 when the inputs
/// cannot be read.
fn audit_command(inputs: LinkInputs, mut json: bool, mut strict: bool) -> Result<i32> {
    let scratch = tempfile::tempdir()?;
    let work = LinkWork::at(scratch.path().to_path_buf());
    let flags = &mut [("--json", &mut json), ("--strict", &mut strict)];
    let report = match inputs.plan(&work, flags, deps::Mode::Describe) {
        Ok(outcome) => audit::report(&outcome.plan),
        Err(error) => {
            eprintln!("dlstatic: error: {error:#}");
            return Ok(2);
        }
    };
    match json {
        true => println!("{}", serde_json::to_string_pretty(&report)?),
        false => print!(
            "{}",
            audit::render_text(&report, audit::stdout_is_terminal())
        ),
    }
    let warnings = if strict {
        report.count(Severity::Warning)
    } else {
        0
    };
    Ok(i32::from(report.count(Severity::Error) + warnings > 0))
}

/// `dlstatic link`: one run per OUT at a time; ends with what it linked.
fn link_command(output: &std::path::Path, inputs: LinkInputs) -> Result<i32> {
    let work = LinkWork::beside(output);
    let _lock = work.lock(output)?;
    let deps = deps::Mode::Build {
        jobs: default_jobs(),
    };
    let deps::Outcome { plan, built } = inputs.plan(&work, &mut [], deps)?;
    let linked = link::link(&plan, output, &work)?;
    let summary = plan.summary();
    let sum = |f: fn(&ModuleSummary) -> usize| summary.modules.iter().map(f).sum::<usize>();
    eprintln!(
        "dlstatic: wrote {} — {} modules ({} reused from {}), {} objects, {} symbols renamed, {} exports registered, {} main-program symbols",
        output.display(),
        plan.modules.len(),
        linked.reused,
        work.dir().display(),
        sum(|m| m.objects.len()),
        sum(|m| m.renamed),
        sum(|m| m.exports),
        linked.main_symbols
    );
    for dep in built {
        eprintln!("dlstatic: {}", dep.describe());
    }
    Ok(0)
}
