//! Stage 1, capture: the compiler wrapper (`dlstatic cc|c++|fc ARGS…`) and
//! `dlstatic capture -- CMD`, which runs a whole build with the wrapper in place.
//!
//! The wrapper runs the real compiler with the same arguments. When the command links
//! a shared object it also snapshots every input into the capture db: build systems
//! (pip, meson) delete their build directories, so the objects must be copied while
//! they exist.

pub mod compiler_args;
pub mod db;
pub mod launcher;
mod masquerade;

pub use masquerade::{LINK_NAME_C, LINK_NAME_CXX, LINK_NAME_FC, Wrapped, invocation};

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use anyhow::{Context, Result, anyhow, bail};

use crate::elf::{self, FileKind};
use crate::module_id::ModuleId;
use crate::toolchain::Driver;
use compiler_args::CompilerCommand;
use db::{ArchiveMember, CaptureDb, LinkInput, LinkRecord, RECORD_VERSION};

/// `dlstatic cc|c++ ARGS…`: returns the exit code to leave with.
pub fn run_wrapper(compiler: &Wrapped) -> Result<i32> {
    let (driver, args) = (compiler.driver, compiler.args);
    let cmd = match compiler_args::parse(args) {
        Ok(cmd) => cmd,
        Err(error) => return unreadable_command(compiler, args, error),
    };
    let db_dir = std::env::var_os("DLSTATIC_DB").filter(|v| !v.is_empty());
    let Some(db_dir) = db_dir.filter(|_| cmd.links_shared_object) else {
        // under capture, a compile with LTO makes fat objects (fat_lto_flag says why)
        let fat = std::env::var_os("DLSTATIC_DB").and(compiler_args::fat_lto_flag(&cmd));
        let mut real_args = args.to_vec();
        real_args.extend(fat.map(String::from));
        return run_real(compiler, &real_args, cmd.stops_before_link);
    };
    let db = CaptureDb::open(Path::new(&db_dir))?;

    // Sources in a link command are compiled here first, so their objects exist to be captured.
    let scratch = tempfile::tempdir().context("cannot create a temporary directory")?;
    let mut link_args = cmd.args.clone();
    let mut inputs = cmd.inputs.clone();
    for (n, &input_index) in cmd.sources.iter().enumerate() {
        let source = &cmd.inputs[input_index];
        let object = scratch
            .path()
            .join(format!("{n}.o"))
            .to_string_lossy()
            .into_owned();
        let compile = compiler_args::compile_only_args(&cmd, source, &object);
        let code = run_real(compiler, &compile, true)?;
        if code != 0 {
            return Ok(code);
        }
        link_args[cmd.input_positions[input_index]] = object.clone();
        inputs[input_index] = object;
    }

    let code = run_real(compiler, &link_args, false)?;
    if code != 0 {
        return Ok(code);
    }
    let record = record_link(&db, driver, &cmd, &inputs).with_context(|| {
        format!(
            "capturing the link of {}",
            cmd.output.as_deref().unwrap_or("a.out")
        )
    })?;
    db.write_record(&record)?;
    Ok(0)
}

/// A command with an argument that is not UTF-8: the real compiler gets the original
/// arguments; the link, if it is one, cannot be captured.
pub fn run_wrapper_unreadable(compiler: &Wrapped, os_args: &[OsString]) -> Result<i32> {
    let bad = os_args
        .iter()
        .find(|a| a.to_str().is_none())
        .cloned()
        .unwrap_or_default();
    let error = anyhow!("argument {bad:?} is not UTF-8 text");
    unreadable_command(compiler, os_args, error)
}

/// A command dlstatic cannot read: the real compiler still runs (a compile must not
/// break), but a shared link that cannot be captured is an error, never a link
/// silently left out.
fn unreadable_command(
    compiler: &Wrapped,
    args: &[impl AsRef<std::ffi::OsStr>],
    error: anyhow::Error,
) -> Result<i32> {
    let code = run_real(compiler, args, false)?;
    let may_link = std::env::var_os("DLSTATIC_DB").is_some()
        && compiler
            .args
            .iter()
            .any(|a| a == "-shared" || a.starts_with('@'));
    match (code, may_link) {
        (0, true) => Err(error.context("the link cannot be captured")),
        _ => Ok(code),
    }
}

/// Run the real compiler with `args`; `compiles`: the command compiles and links nothing,
/// so a compiler launcher (ccache…) may serve it.
fn run_real(
    compiler: &Wrapped,
    args: &[impl AsRef<std::ffi::OsStr>],
    compiles: bool,
) -> Result<i32> {
    let real = launcher::command(compiler.real_command(), compiles);
    let mut command = Command::new(&real[0]);
    command.args(&real[1..]).args(args);
    if let Some(path) = masquerade::real_path() {
        command.env("PATH", path);
    }
    let status = command.status().with_context(|| {
        format!(
            "cannot run the real compiler `{}` (set {})",
            real.join(" "),
            compiler.driver.real_variable()
        )
    })?;
    Ok(exit_code(status))
}

pub fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

fn record_link(
    db: &CaptureDb,
    driver: Driver,
    cmd: &CompilerCommand,
    inputs: &[String],
) -> Result<LinkRecord> {
    let cwd = std::env::current_dir()?;
    let output = cwd.join(cmd.output.as_deref().unwrap_or("a.out"));
    let bytes = std::fs::read(&output)
        .with_context(|| format!("{}: cannot read link output", output.display()))?;
    let interface = elf::shared_object_interface(&bytes)
        .with_context(|| format!("{}: cannot read link output", output.display()))?;
    let lib_dirs: Vec<PathBuf> = cmd.lib_dirs.iter().map(|d| cwd.join(d)).collect();

    let mut recorded = Vec::new();
    for (index, input) in inputs.iter().enumerate() {
        let whole = cmd.whole_inputs.contains(&index);
        recorded.push(snapshot_input(db, &cwd.join(input), whole)?);
    }
    // A -lNAME that the linker found as a static archive in one of the build's own -L
    // directories is part of the module, like an archive given by path.
    let mut libs = Vec::new();
    for lib in &cmd.libs {
        match static_archive_in_build_dirs(lib, &lib_dirs) {
            Some(archive) => {
                let whole = cmd.whole_libs.contains(lib);
                recorded.push(snapshot_input(db, &archive, whole)?)
            }
            None => libs.push(lib.clone()),
        }
    }
    Ok(LinkRecord {
        version: RECORD_VERSION,
        output: output.to_string_lossy().into_owned(),
        id: ModuleId::of(&bytes),
        soname: interface.soname,
        cwd: cwd.to_string_lossy().into_owned(),
        driver,
        argv: cmd.args.clone(),
        inputs: recorded,
        libs,
        lib_dirs: lib_dirs
            .iter()
            .map(|d| d.to_string_lossy().into_owned())
            .collect(),
        linker_flags: cmd.linker_flags.clone(),
        undefined_roots: cmd.undefined_roots.clone(),
        exports: interface.exports,
    })
}

/// The linker's choice for `-lNAME` among the -L directories: the first directory
/// holding `libNAME.so` or `libNAME.a` wins, and within it the shared library.
/// Only a static archive counts here; system directories are left to the link stage.
fn static_archive_in_build_dirs(lib: &str, dirs: &[PathBuf]) -> Option<PathBuf> {
    if lib.starts_with(':') {
        let file = dirs
            .iter()
            .map(|d| d.join(&lib[1..]))
            .find(|p| p.is_file())?;
        return file.extension().is_some_and(|e| e == "a").then_some(file);
    }
    for dir in dirs {
        if dir.join(format!("lib{lib}.so")).exists() {
            return None;
        }
        let archive = dir.join(format!("lib{lib}.a"));
        if archive.is_file() {
            return Some(archive);
        }
    }
    None
}

fn snapshot_input(db: &CaptureDb, path: &Path, whole: bool) -> Result<LinkInput> {
    let display = path.to_string_lossy().into_owned();
    let bytes =
        std::fs::read(path).with_context(|| format!("{display}: cannot read link input"))?;
    Ok(match elf::file_kind(&bytes) {
        FileKind::Relocatable => LinkInput::Object {
            path: display,
            md5: db.store_object(&bytes)?,
        },
        FileKind::Archive | FileKind::ThinArchive => LinkInput::Archive {
            members: snapshot_archive_members(db, path, &bytes)?,
            path: display,
            whole,
        },
        FileKind::SharedObject => LinkInput::Shared { path: display },
        FileKind::Other => LinkInput::Other { path: display },
    })
}

/// Copy every member of a regular or thin archive into the db. Thin archives hold only
/// member paths (relative to the archive), so the member files are read now.
fn snapshot_archive_members(
    db: &CaptureDb,
    path: &Path,
    bytes: &[u8],
) -> Result<Vec<ArchiveMember>> {
    let display = path.display();
    let archive = object::read::archive::ArchiveFile::parse(bytes)
        .map_err(|e| anyhow!("{display}: malformed archive: {e}"))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut members = Vec::new();
    for member in archive.members() {
        let member = member.map_err(|e| anyhow!("{display}: malformed archive: {e}"))?;
        let name = String::from_utf8_lossy(member.name()).into_owned();
        let data = if member.is_thin() {
            let member_path = base.join(&name);
            std::fs::read(&member_path).with_context(|| {
                format!(
                    "{}: member of thin archive {display} is missing",
                    member_path.display()
                )
            })?
        } else {
            member
                .data(bytes)
                .map_err(|e| anyhow!("{display}({name}): {e}"))?
                .to_vec()
        };
        members.push(ArchiveMember {
            name,
            md5: db.store_object(&data)?,
        });
    }
    Ok(members)
}

/// `dlstatic capture --db DIR [--cc-launcher L] -- CMD ARGS…`: ends with a line saying
/// how many shared-object links it recorded, and a warning when there were none.
pub fn run_capture(db_dir: &Path, command: &[String], cc_launcher: Option<&str>) -> Result<i32> {
    let Some((program, args)) = command.split_first() else {
        bail!("capture: no command given (usage: dlstatic capture --db DIR -- CMD ARGS…)");
    };
    let launcher = cc_launcher.map(launcher::find).transpose()?;
    let db = CaptureDb::open(db_dir)?;
    let before = db.record_names()?;
    let db_dir = std::path::absolute(db_dir)?;
    let exe = std::env::current_exe().context("cannot locate the dlstatic executable")?;
    let links = tempfile::tempdir().context("cannot create a temporary directory")?;
    let mut child = Command::new(program);
    child.args(args).env("DLSTATIC_DB", &db_dir);
    child.envs(masquerade::make_directory(links.path(), &exe)?);
    set_compiler_variables(&mut child, &exe, links.path());
    if let Some(launcher) = &launcher {
        child.envs(launcher::environment(launcher));
    }
    let status = child
        .status()
        .with_context(|| format!("capture: cannot run `{program}`"))?;
    let recorded = db.record_names()?.difference(&before).count();
    eprintln!(
        "dlstatic: capture: {recorded} shared-object link{} recorded in {}",
        if recorded == 1 { "" } else { "s" },
        db_dir.display()
    );
    if recorded == 0 && status.success() {
        eprintln!(
            "dlstatic: warning: the build linked no shared object through a compiler capture sees (one called by absolute path, or nothing left to rebuild?)"
        );
    }
    Ok(exit_code(status))
}

/// CC, CXX, FC (F77, F90), LDSHARED, LDCXXSHARED and cargo's linker point at the
/// wrapper; a compiler the user chose with CC/CXX/FC stays the real compiler behind it.
fn set_compiler_variables(child: &mut Command, exe: &Path, links: &Path) {
    let exe_text = exe.to_string_lossy();
    child
        .env("CC", format!("{exe_text} cc"))
        .env("CXX", format!("{exe_text} c++"))
        .env("LDSHARED", format!("{exe_text} cc -shared"))
        .env("LDCXXSHARED", format!("{exe_text} c++ -shared"));
    for var in ["FC", "F77", "F90"] {
        child.env(var, format!("{exe_text} fc"));
    }
    for (var, driver) in [
        ("CC", Driver::C),
        ("CXX", Driver::Cxx),
        ("FC", Driver::Fortran),
    ] {
        let real_var = driver.real_variable();
        if let (Some(user), None) = (std::env::var_os(var), std::env::var_os(real_var))
            && !user.to_string_lossy().contains(exe_text.as_ref())
        {
            child.env(real_var, user);
        }
    }
    // cargo (maturin, setuptools-rust) links with one program, not `dlstatic cc`
    let target = env!("DLSTATIC_TARGET").to_uppercase().replace('-', "_");
    child.env(
        format!("CARGO_TARGET_{target}_LINKER"),
        links.join(LINK_NAME_C),
    );
}
