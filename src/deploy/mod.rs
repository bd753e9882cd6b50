//! `dlstatic package OUT --format FORMAT -o PATH`: one deployable artefact from the
//! payload `dlstatic build` wrote (see README, "Deploy").
//!
//! Directory formats (tar, oci, oci-archive, initramfs) hold the payload as it is, plus
//! the multi-call helpers, a `bin/NAME` link per console script and the app; `single`
//! (and `lambda`, whose `bootstrap` is a single file) append the Python tree to the
//! interpreter. Every format is written from a [`tree::Tree`], so the same OUT gives
//! the same bytes.

pub mod archive;
pub mod launcher;
mod marshal;
pub mod oci;
pub mod single;
pub mod tree;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::python::payload::Manifest;
use tree::{Content, Tree};

/// The helper modules every artefact carries: (module file, source).
const HELPERS: &[(&str, &str)] = &[
    ("_dlstatic_run.py", include_str!("python/run.py")),
    ("_dlstatic_lambda.py", include_str!("python/lambda.py")),
    ("_dlstatic_tree.py", include_str!("python/tree.py")),
];

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One executable: interpreter, modules, stdlib, site-packages and app
    Single,
    /// The payload directory as a reproducible tarball
    Tar,
    /// An OCI image layout directory
    Oci,
    /// The OCI image layout as one tar
    OciArchive,
    /// An AWS Lambda function zip (`bootstrap` is a single file)
    Lambda,
    /// A gzip'd newc cpio whose /init is the interpreter (a microVM's whole root)
    Initramfs,
}

pub struct PackageOptions {
    pub out: PathBuf,
    pub format: Format,
    pub output: PathBuf,
    /// A directory of the user's own Python code, put on sys.path.
    pub app: Option<PathBuf>,
    /// The Lambda handler, MODULE.FUNCTION.
    pub handler: Option<String>,
    /// The module an initramfs (or an OCI image's entry point) runs as `python -m`.
    pub entry: Option<String>,
    /// The OCI image's tag.
    pub tag: String,
}

pub fn package(options: &PackageOptions) -> Result<()> {
    let manifest = crate::python::verify::read_manifest(&options.out)?;
    let payload = Payload::new(&options.out, &manifest, options)?;
    let written = match options.format {
        Format::Single => payload.single_file()?,
        Format::Tar => archive::tar(&payload.directory_tree()?)?,
        Format::Oci => {
            let layout = oci::layout(&payload.directory_tree()?, options, &payload.python)?;
            return write_directory(&layout, &options.output);
        }
        Format::OciArchive => archive::tar(&oci::layout(
            &payload.directory_tree()?,
            options,
            &payload.python,
        )?)?,
        Format::Lambda => archive::zip(&[("bootstrap", 0o755, &payload.single_file()?)])?,
        Format::Initramfs => archive::gzip(&archive::cpio(&payload.initramfs_tree()?)?)?,
    };
    crate::fsutil::write_atomic(&options.output, &written)?;
    if matches!(options.format, Format::Single) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&options.output, std::fs::Permissions::from_mode(0o755))?;
    }
    eprintln!(
        "dlstatic: wrote {} ({:.1} MB)",
        options.output.display(),
        written.len() as f64 / 1e6
    );
    Ok(())
}

/// What the formats are made from: OUT, its manifest and the package options.
struct Payload<'a> {
    out: &'a Path,
    manifest: &'a Manifest,
    options: &'a PackageOptions,
    /// `python3.11`
    python: String,
}

impl<'a> Payload<'a> {
    fn new(out: &'a Path, manifest: &'a Manifest, options: &'a PackageOptions) -> Result<Self> {
        let python = manifest.python.trim_start_matches("/bin/").to_string();
        if !out.join("bin").join(&python).is_file() {
            bail!(
                "{}: no bin/{python} (was OUT made by `dlstatic build`?)",
                out.display()
            );
        }
        if let Some(app) = &options.app
            && !app.is_dir()
        {
            bail!(
                "{}: --app must be a directory of Python code",
                app.display()
            );
        }
        for (flag, value) in [("--handler", &options.handler), ("--entry", &options.entry)] {
            if let Some(name) = value
                && !name
                    .split('.')
                    .all(|p| !p.is_empty() && p.chars().all(|c| c.is_alphanumeric() || c == '_'))
            {
                bail!("{flag} {name}: not a dotted Python name");
            }
        }
        match options.format {
            Format::Lambda if options.handler.as_deref().is_none_or(|h| !h.contains('.')) => {
                bail!("--format lambda needs --handler MODULE.FUNCTION")
            }
            Format::Initramfs if options.entry.is_none() => {
                bail!("--format initramfs needs --entry MODULE (what /init runs)")
            }
            _ => Ok(Self {
                out,
                manifest,
                options,
                python,
            }),
        }
    }

    /// `lib/python3.11`
    fn lib(&self) -> String {
        format!("lib/{}", self.python)
    }

    /// The helper modules and `_dlstatic_config` (entry, handler) into `dir`.
    fn add_helpers(&self, tree: &mut Tree, dir: &str) -> Result<()> {
        for (name, source) in HELPERS {
            tree.add_bytes(&tree::join(dir, name), 0o644, source.as_bytes().to_vec())?;
        }
        let config = format!(
            "# written by dlstatic package\nENTRY = {:?}\nHANDLER = {:?}\n",
            self.options.entry.as_deref().unwrap_or(""),
            self.options.handler.as_deref().unwrap_or("")
        );
        tree.add_bytes(
            &tree::join(dir, "_dlstatic_config.py"),
            0o644,
            config.into_bytes(),
        )?;
        if let Some(app) = &self.options.app {
            tree.add_dir_contents(app, dir)?;
        }
        Ok(())
    }

    /// OUT as it is, with the helpers and app in site-packages and a `bin/NAME` link to
    /// the interpreter for each console script (the launcher dispatches on the name).
    fn directory_tree(&self) -> Result<Tree> {
        let mut tree = Tree::default();
        tree.add_dir_contents(self.out, "")?;
        let site = format!("{}/site-packages", self.lib());
        self.add_helpers(&mut tree, &site)?;
        for name in console_scripts(&self.out.join(&site))? {
            let link = format!("bin/{name}");
            if !tree.entries.contains_key(&link) {
                tree.insert(&link, 0o777, 0, Content::Symlink(self.python.clone()))?;
            }
        }
        Ok(tree)
    }

    /// The directory tree as a microVM's root: `/init` is the interpreter.
    fn initramfs_tree(&self) -> Result<Tree> {
        let mut tree = self.directory_tree()?;
        tree.insert(
            "init",
            0o777,
            0,
            Content::Symlink(format!("bin/{}", self.python)),
        )?;
        for dir in ["proc", "tmp", "dev"] {
            tree.insert(dir, 0o755, 0, Content::Dir)?;
        }
        tree.insert("dev/console", 0o600, 0, Content::CharDevice(5, 1))?;
        Ok(tree)
    }

    /// The interpreter with stdlib, site-packages, helpers and app appended.
    fn single_file(&self) -> Result<Vec<u8>> {
        let lib = self.out.join(self.lib());
        let mut tree = Tree::default();
        tree.add_dir_contents(&lib, "")?;
        let payload_only =
            |path: &str, top: &str| path == top || path.starts_with(&format!("{top}/"));
        tree.entries.retain(|path, _| {
            !payload_only(path, "lib-dynload") && !payload_only(path, "site-packages")
        });
        if lib.join("site-packages").is_dir() {
            tree.add_dir_contents(&lib.join("site-packages"), "")?;
        }
        for module in &self.manifest.modules {
            tree.entries.remove(&single::tree_path(&module.stub));
        }
        tree.entries
            .retain(|_, entry| !matches!(entry.content, Content::Symlink(_)));
        self.add_helpers(&mut tree, "")?;
        let tag = format!(
            "cpython-{}",
            self.python.trim_start_matches("python").replace('.', "")
        );
        single::build(
            &self.out.join("bin").join(&self.python),
            &tree,
            self.manifest,
            &tag,
        )
    }
}

/// The `console_scripts` names in `site`'s `*.dist-info/entry_points.txt`, except
/// `python*` (under such a name the interpreter runs as itself).
fn console_scripts(site: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    let Ok(listing) = std::fs::read_dir(site) else {
        return Ok(names);
    };
    for entry in listing.flatten() {
        let file = entry.path().join("entry_points.txt");
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let mut in_section = false;
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                in_section = line == "[console_scripts]";
            } else if let Some((name, _)) = line.split_once('=')
                && in_section
            {
                let name = name.trim();
                if !name.starts_with("python") && !name.contains('/') {
                    names.push(name.to_string());
                }
            }
        }
    }
    names.sort();
    Ok(names)
}

/// Writes `tree` as the directory `dest` (built beside it, then renamed into place).
fn write_directory(tree: &Tree, dest: &Path) -> Result<()> {
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let staging = tempfile::Builder::new()
        .prefix(".dlstatic-package")
        .tempdir_in(parent)?;
    for (path, entry) in &tree.entries {
        let target = staging.path().join(path);
        match &entry.content {
            Content::Dir => std::fs::create_dir_all(&target)?,
            Content::Symlink(to) => std::os::unix::fs::symlink(to, &target)?,
            Content::CharDevice(..) => bail!("{path}: device nodes only go into archives"),
            _ => std::fs::write(&target, entry.data()?)
                .with_context(|| format!("{}: cannot write", target.display()))?,
        }
    }
    if dest.is_dir() {
        std::fs::remove_dir_all(dest)
            .with_context(|| format!("{}: cannot replace", dest.display()))?;
    }
    std::fs::rename(staging.keep(), dest)
        .with_context(|| format!("{}: cannot write", dest.display()))?;
    eprintln!("dlstatic: wrote {}", dest.display());
    Ok(())
}
