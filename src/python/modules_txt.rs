//! `modules.txt`: what third-party packages go into the interpreter.
//!
//! A line is a pip requirement (`simplejson==3.19.3`, `requests>=2`, `pkg[extra]`,
//! `name @ URL`, `-r other.txt`, `-e …`, a local path, `git+https://…`, a pip option such
//! as `--index-url`, i.e. `pip freeze` output as is) or Kontain's form
//! `<name> <version> [<source-url>] ["<build deps>"]`. `#` starts a comment. A named
//! requirement may end in config settings for its build backend, as in pip's own
//! requirements files: `--config-settings=KEY=VALUE`, `--config-settings KEY=VALUE`,
//! `-C KEY=VALUE`, `-CKEY=VALUE`. Anything else is an error naming file and line.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use pep508_rs::pep440_rs::Version;
use pep508_rs::{PackageName, VerbatimUrl};

#[derive(Debug, Clone, PartialEq)]
pub struct Requirement {
    /// The line as pip reads it.
    pub pip: String,
    /// Kontain's build dependencies, installed into the build environment first.
    pub build_deps: Vec<String>,
    /// `KEY=VALUE` settings for this package's build backend, in the order given
    /// (meson-python's `setup-args` may repeat).
    pub config_settings: Vec<String>,
    /// `file:line`, for messages.
    pub origin: String,
}

impl Requirement {
    /// `pip` with nothing else (its origin is filled in by the reader).
    fn plain(pip: String) -> Requirement {
        Requirement {
            pip,
            build_deps: Vec::new(),
            config_settings: Vec::new(),
            origin: String::new(),
        }
    }

    /// The line of a requirements file for pip (23.1 or later reads config settings
    /// there, and passes them to this package's build alone).
    pub fn pip_line(&self) -> String {
        let settings = self.config_settings.iter();
        std::iter::once(self.pip.clone())
            .chain(settings.map(|setting| format!("--config-settings={setting}")))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// pip options that may stand on a line of their own in a requirements file.
const PIP_OPTIONS: &[&str] = &[
    "--index-url",
    "-i",
    "--extra-index-url",
    "--find-links",
    "-f",
    "--pre",
    "--no-index",
    "--trusted-host",
];

/// Bounds on what a modules file and its `-r` includes may be: a modules file is a few
/// kB, and `-r /dev/zero` or a file including itself must end in one error, not in
/// gigabytes or minutes.
const MAX_FILE_BYTES: u64 = 1 << 20;
const MAX_TOTAL_BYTES: u64 = 16 << 20;
const MAX_FILES: usize = 1000;
const MAX_DEPTH: usize = 16;

pub fn parse_file(path: &Path) -> Result<Vec<Requirement>> {
    let mut reader = Reader::default();
    let text = reader.read(path)?;
    reader.parse_text(&text, path)?;
    Ok(reader.requirements)
}

/// `text` read as the modules file `path` (which names its lines and is where `-r` and
/// local paths are found from), without reading `path` itself.
pub fn parse_str(text: &str, path: &Path) -> Result<Vec<Requirement>> {
    let mut reader = Reader::default();
    reader.parse_text(text, path)?;
    Ok(reader.requirements)
}

/// One modules file and what it includes, read depth first.
#[derive(Default)]
struct Reader {
    requirements: Vec<Requirement>,
    /// The files being read, outermost first: where a `-r` cycle shows.
    including: Vec<PathBuf>,
    files_read: usize,
    bytes_read: u64,
}

impl Reader {
    /// The text of one file, within the bounds.
    fn read(&mut self, path: &Path) -> Result<String> {
        use std::io::Read;
        let file = std::fs::File::open(path)
            .with_context(|| format!("{}: cannot read modules file", path.display()))?;
        let mut bytes = Vec::new();
        file.take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .with_context(|| format!("{}: cannot read modules file", path.display()))?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            bail!(
                "{}: larger than {} MiB: not a modules file",
                path.display(),
                MAX_FILE_BYTES >> 20
            );
        }
        self.files_read += 1;
        self.bytes_read += bytes.len() as u64;
        if self.files_read > MAX_FILES || self.bytes_read > MAX_TOTAL_BYTES {
            bail!(
                "{}: -r includes read more than {MAX_FILES} files or {} MiB in all",
                path.display(),
                MAX_TOTAL_BYTES >> 20
            );
        }
        String::from_utf8(bytes)
            .map_err(|_| anyhow::anyhow!("{}: not UTF-8 text: not a modules file", path.display()))
    }

    fn parse_text(&mut self, text: &str, path: &Path) -> Result<()> {
        // absolute, so local paths still name the same tree when pip runs in another directory
        let path = std::path::absolute(path)?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        self.including.push(path.clone());
        for (index, raw) in text.lines().enumerate() {
            let origin = format!("{}:{}", path.display(), index + 1);
            let line = strip_comment(raw).trim();
            if line.is_empty() {
                continue;
            }
            if let Some(included) = line
                .strip_prefix("-r ")
                .or_else(|| line.strip_prefix("--requirement "))
            {
                self.include(&origin, &base.join(included.trim()))?;
                continue;
            }
            let requirement = parse_line(line, &base)
                .map_err(|why| anyhow::anyhow!("{origin}: {why}: `{line}`"))?;
            self.requirements.push(Requirement {
                origin,
                ..requirement
            });
        }
        self.including.pop();
        Ok(())
    }

    /// `-r included` on the line `origin`: errors in the included file name their own
    /// file and line, so only the ones about the include itself name `origin`.
    fn include(&mut self, origin: &str, included: &Path) -> Result<()> {
        let included = std::path::absolute(included)?;
        let same = |a: &Path| a == included || same_file(a, &included);
        if let Some(start) = self.including.iter().position(|p| same(p)) {
            let cycle: Vec<String> = self.including[start..]
                .iter()
                .chain([&included])
                .map(|p| p.display().to_string())
                .collect();
            bail!("{origin}: -r cycle: {}", cycle.join(" → "));
        }
        if self.including.len() > MAX_DEPTH {
            bail!("{origin}: -r nests more than {MAX_DEPTH} files deep");
        }
        let text = self
            .read(&included)
            .map_err(|e| anyhow::anyhow!("{origin}: -r {e:#}"))?;
        self.parse_text(&text, &included)
    }
}

/// Two names of one file (a symlink, `./a.txt` and `a.txt`).
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

/// `#` starts a comment when it begins the line or follows whitespace (a URL fragment
/// such as `#egg=name` stays).
fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'#' && (i == 0 || bytes[i - 1].is_ascii_whitespace()) {
            return &line[..i];
        }
    }
    line
}

fn parse_line(line: &str, base: &Path) -> Result<Requirement, String> {
    let option = line.split([' ', '=']).next().unwrap_or("");
    if PIP_OPTIONS.contains(&option) {
        return Ok(Requirement::plain(line.to_string()));
    }
    if let Some(editable) = line
        .strip_prefix("-e ")
        .or_else(|| line.strip_prefix("--editable "))
    {
        // an editable install of a checkout: built like any other source
        return Ok(Requirement::plain(editable.trim().to_string()));
    }
    let (spec, config_settings) = split_config_settings(line)?;
    let requirement = parse_spec(spec, base)?;
    if !config_settings.is_empty() && parse_pep508(&requirement.pip).is_err() {
        return Err(
            "config settings need a named requirement (`name @ URL` for a URL or a local path)"
                .into(),
        );
    }
    Ok(Requirement {
        config_settings,
        ..requirement
    })
}

/// A requirement and the config settings after it. As in pip, options start at the
/// first word that begins with `-`; here only config settings may follow.
fn split_config_settings(line: &str) -> Result<(&str, Vec<String>), String> {
    let bytes = line.as_bytes();
    let start = (0..bytes.len())
        .find(|&i| bytes[i] == b'-' && (i == 0 || bytes[i - 1].is_ascii_whitespace()))
        .unwrap_or(line.len());
    if start == 0 {
        return Err("unknown option (only -r, -e and pip's index options may appear)".into());
    }
    let mut words = line[start..].split_whitespace();
    let mut settings = Vec::new();
    while let Some(word) = words.next() {
        let setting = match word {
            "--config-settings" | "-C" => words.next().ok_or(format!("{word} needs KEY=VALUE"))?,
            _ => word
                .strip_prefix("--config-settings=")
                .or_else(|| word.strip_prefix("-C"))
                .ok_or(format!(
                    "unknown option `{word}` after a requirement (only --config-settings and -C may follow one)"
                ))?,
        };
        settings.push(config_setting(setting)?);
    }
    Ok((line[..start].trim_end(), settings))
}

/// One `KEY=VALUE` config setting, checked.
fn config_setting(setting: &str) -> Result<String, String> {
    match setting.split_once('=') {
        _ if setting.contains(['"', '\'', '\\']) => Err(format!(
            "config setting `{setting}`: quotes and backslashes are not supported"
        )),
        Some((key, _)) if !key.is_empty() && !key.starts_with('-') => Ok(setting.to_string()),
        _ => Err(format!("config setting `{setting}` is not KEY=VALUE")),
    }
}

/// A requirement without options: a URL, a local path, PEP 508 or Kontain's form.
fn parse_spec(line: &str, base: &Path) -> Result<Requirement, String> {
    let requirement = |pip: String| Ok(Requirement::plain(pip));
    if line.starts_with("git+")
        || line.starts_with("hg+")
        || line.starts_with("https://")
        || line.starts_with("http://")
        || line.starts_with("file:")
    {
        return requirement(line.to_string());
    }
    if line.starts_with('.') || line.starts_with('/') {
        let path = base.join(line);
        return if path.exists() {
            requirement(path.to_string_lossy().into_owned())
        } else {
            Err("local path does not exist".into())
        };
    }
    match parse_pep508(line) {
        Ok(_) => requirement(line.to_string()),
        // its message alone: the full error repeats the line and underlines on two more
        Err(pep508) => parse_kontain(line).unwrap_or_else(|| {
            Err(format!(
                "{pep508} (and not `<name> <version> [<source-url>] [\"<build deps>\"]` either)"
            ))
        }),
    }
}

/// The project name of a PEP 508 requirement, or why it is not one. pep508_rs 0.9.2
/// panics on some malformed lines (an `expect` on names and extras ending in `.-_` before
/// more text, a slice inside a multi-byte character: the fuzz findings in
/// fuzz/findings/modules_txt-*); such a panic is a parse error here. The panic hook is silenced meanwhile so nothing is
/// printed (modules files are read before dlstatic starts any thread).
fn parse_pep508(line: &str) -> Result<String, String> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let parsed = std::panic::catch_unwind(|| {
        pep508_rs::Requirement::<VerbatimUrl>::from_str(line)
            .map(|requirement| requirement.name.to_string())
            .map_err(|e| e.message.to_string())
    });
    std::panic::set_hook(hook);
    parsed.unwrap_or_else(|_| Err("not a requirement (the PEP 508 parser failed on it)".into()))
}

/// `<name> <version> [<source-url>] ["<build deps>"]`; None for a line of another shape.
fn parse_kontain(line: &str) -> Option<Result<Requirement, String>> {
    let (head, build_deps) = match line.find('"') {
        Some(open) => {
            let rest = &line[open + 1..];
            let Some(close) = rest.find('"') else {
                return Some(Err("unterminated \"build deps\"".into()));
            };
            if !rest[close + 1..].trim().is_empty() {
                return Some(Err("text after \"build deps\"".into()));
            }
            (
                &line[..open],
                rest[..close].split_whitespace().map(String::from).collect(),
            )
        }
        None => (line, Vec::new()),
    };
    let words: Vec<&str> = head.split_whitespace().collect();
    let pip = match words.as_slice() {
        [name, version, rest @ ..] if rest.len() <= 1 => {
            // validated, but passed on as written (pip normalises it itself)
            PackageName::from_str(name).ok()?;
            if let Err(error) = Version::from_str(version) {
                return Some(Err(format!(
                    "not a `<name> <version>` line: version `{version}`: {error}"
                )));
            }
            match rest {
                [] => format!("{name}=={version}"),
                [url] if url.contains("://") => format!("{name} @ {url}"),
                _ => return None,
            }
        }
        _ => return None,
    };
    Some(Ok(Requirement {
        build_deps,
        ..Requirement::plain(pip)
    }))
}

/// The config settings of every project given some, by PEP 503 name; an error names
/// the line that gives a project other settings than an earlier line did.
pub fn config_settings_by_project(
    requirements: &[Requirement],
) -> Result<HashMap<String, Vec<String>>> {
    let mut by_project: HashMap<String, &Requirement> = HashMap::new();
    for requirement in requirements
        .iter()
        .filter(|r| !r.config_settings.is_empty())
    {
        // parse_line let config settings stand only after a named requirement
        let name = normalized_name(&parse_pep508(&requirement.pip).unwrap_or_default());
        if let Some(earlier) = by_project.get(&name)
            && earlier.config_settings != requirement.config_settings
        {
            bail!(
                "{}: {name}: other config settings than on {}",
                requirement.origin,
                earlier.origin
            );
        }
        by_project.insert(name, requirement);
    }
    Ok(by_project
        .into_iter()
        .map(|(name, requirement)| (name, requirement.config_settings.clone()))
        .collect())
}

/// A project name in its PEP 503 normal form (`Zope.Interface`, `zope__interface` →
/// `zope-interface`), for comparing names as pip does. A string that is no project
/// name (`?` for a file no RECORD lists) is only lowercased: it then equals no
/// project's normal form.
pub fn normalized_name(name: &str) -> String {
    PackageName::from_str(name).map_or_else(|_| name.to_lowercase(), |n| n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pips(text: &str) -> Result<Vec<String>> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("other.txt"), "idna==3.7\n").unwrap();
        let path = dir.path().join("modules.txt");
        std::fs::write(&path, text).unwrap();
        Ok(parse_file(&path)?.into_iter().map(|r| r.pip).collect())
    }

    #[test]
    fn pip_lines_freeze_output_and_includes() {
        let got = pips("# comment\nsimplejson==3.19.3  # pinned\nrequests[socks]>=2.0,<3\n\n-r other.txt\n\
                        markupsafe @ https://example.org/m.tar.gz\ngit+https://github.com/x/y.git#egg=y\n\
                        --index-url https://pypi.org/simple\nzope.interface==6.0 ; python_version >= \"3.8\"\n").unwrap();
        assert_eq!(
            got,
            [
                "simplejson==3.19.3",
                "requests[socks]>=2.0,<3",
                "idna==3.7",
                "markupsafe @ https://example.org/m.tar.gz",
                "git+https://github.com/x/y.git#egg=y",
                "--index-url https://pypi.org/simple",
                "zope.interface==6.0 ; python_version >= \"3.8\"",
            ]
        );
    }

    #[test]
    fn kontain_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.txt");
        std::fs::write(&path, "markupsafe 2.1.5\nfalcon 3.1.3 https://example.org/falcon.tar.gz \"cython setuptools\"\n").unwrap();
        let got = parse_file(&path).unwrap();
        assert_eq!(got[0].pip, "markupsafe==2.1.5");
        assert_eq!(got[1].pip, "falcon @ https://example.org/falcon.tar.gz");
        assert_eq!(got[1].build_deps, ["cython", "setuptools"]);
        assert!(got[1].origin.ends_with("m.txt:2"));
    }

    #[test]
    fn local_paths_become_absolute_whatever_the_modules_file_was_called() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("pkg")).unwrap();
        std::fs::write(dir.path().join("m.txt"), "./pkg\n").unwrap();
        let cwd = std::env::current_dir().unwrap();
        let relative = pathdiff(dir.path(), &cwd);
        let got = parse_file(&relative.join("m.txt")).unwrap();
        assert!(Path::new(&got[0].pip).is_absolute(), "{}", got[0].pip);
        assert!(Path::new(&got[0].pip).is_dir());
    }

    /// `to` as a path relative to `from` (both absolute).
    fn pathdiff(to: &Path, from: &Path) -> PathBuf {
        let ups = from.components().count() - 1;
        let mut path: PathBuf = std::iter::repeat_n("..", ups).collect();
        path.push(to.strip_prefix("/").unwrap());
        path
    }

    #[test]
    fn unknown_syntax_names_file_and_line() {
        let err = pips("simplejson==3.19.3\nthis is not valid\n").unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("modules.txt:2") && text.contains("this is not valid"),
            "{text}"
        );
        let err = pips("--frobnicate\n").unwrap_err();
        assert!(format!("{err:#}").contains("modules.txt:1: unknown option"));
        let err = pips("-r missing.txt\n").unwrap_err();
        assert!(format!("{err:#}").contains("missing.txt"));
    }

    #[test]
    fn lines_pep508_rejects_name_file_and_line_on_one_line() {
        for (line, why) in [
            ("requests>=2.0,<3,", "end of version specifier"),
            ("simplejson==3.19.3 ; python_version >> \"3.8\"", "operator"),
            ("-bad-name==1.0", "unknown option"),
            ("markupsafe 2.1.5x.y", "version `2.1.5x.y`"),
        ] {
            assert_second_line_rejected(line, why);
        }
    }

    /// `line`, the second of a modules file, is an error of one line that names the file,
    /// the line and `why` (in any case).
    fn assert_second_line_rejected(line: &str, why: &str) {
        let err = pips(&format!("idna==3.7\n{line}\n")).unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("modules.txt:2: ")
                && text.to_lowercase().contains(&why.to_lowercase())
                && !text.contains('\n'),
            "{line}: {text}"
        );
    }

    #[test]
    fn a_cycle_is_one_line_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), "idna==3.7\n-r b.txt\n").unwrap();
        std::fs::write(dir.path().join("b.txt"), "# b\n-r ./a.txt\n").unwrap();
        let err = parse_file(&dir.path().join("a.txt")).unwrap_err();
        let text = format!("{err:#}");
        let (a, b) = (dir.path().join("a.txt"), dir.path().join("b.txt"));
        let (a, b) = (a.display(), b.display());
        assert_eq!(text, format!("{b}:2: -r cycle: {a} → {b} → {a}"));
    }

    #[test]
    fn includes_are_bounded_in_size_count_and_depth() {
        let started = std::time::Instant::now();
        let err = pips("-r /dev/zero\n").unwrap_err();
        assert!(
            format!("{err:#}").contains("modules.txt:1: -r /dev/zero: larger than 1 MiB"),
            "{err:#}"
        );
        assert!(started.elapsed().as_secs() < 5);
        // every file includes the next one twice: 2^16 reads unless counted
        let dir = tempfile::tempdir().unwrap();
        for level in 0..17 {
            let text = format!("-r f{0}.txt\n-r f{0}.txt\n", level + 1);
            std::fs::write(dir.path().join(format!("f{level}.txt")), text).unwrap();
        }
        std::fs::write(dir.path().join("f17.txt"), "idna==3.7\n").unwrap();
        let err = parse_file(&dir.path().join("f0.txt")).unwrap_err();
        assert!(format!("{err:#}").contains("nests more than 16"), "{err:#}");
        for level in 0..12 {
            let text = format!("-r f{0}.txt\n-r f{0}.txt\n", level + 1);
            std::fs::write(dir.path().join(format!("f{level}.txt")), text).unwrap();
        }
        std::fs::write(dir.path().join("f12.txt"), "idna==3.7\n").unwrap();
        let err = parse_file(&dir.path().join("f0.txt")).unwrap_err();
        assert!(
            format!("{err:#}").contains("more than 1000 files"),
            "{err:#}"
        );
    }

    /// fuzz/findings/modules_txt-*: pep508_rs panics on these
    #[test]
    fn lines_the_pep508_parser_panics_on_are_an_error_not_a_panic() {
        for line in [
            "zope./pkg",
            "foo_==1.0",
            "a- b",
            "simplus[setso.19.3- # x",
            "p[a,b_]",
        ] {
            let err = pips(&format!("{line}\n")).unwrap_err();
            assert!(
                format!("{err:#}").contains("the PEP 508 parser failed on it"),
                "{line}: {err:#}"
            );
        }
    }

    #[test]
    fn config_settings_in_every_form_pip_accepts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.txt");
        let text = "matplotlib==3.9.2 --config-settings=setup-args=-Dsystem-freetype=true  -C setup-args=-Dsystem-qhull=true\n\
                    numpy==2.1.3 ; python_version >= \"3.9\" --config-settings compile-args=-v -Cbuilddir=b # why\n\
                    markupsafe 2.1.5 -C key=\nidna==3.7\n";
        std::fs::write(&path, text).unwrap();
        let got = parse_file(&path).unwrap();
        assert_eq!(got[0].pip, "matplotlib==3.9.2");
        assert_eq!(
            got[0].pip_line(),
            "matplotlib==3.9.2 --config-settings=setup-args=-Dsystem-freetype=true \
             --config-settings=setup-args=-Dsystem-qhull=true"
        );
        assert_eq!(got[1].pip, "numpy==2.1.3 ; python_version >= \"3.9\"");
        assert_eq!(got[1].config_settings, ["compile-args=-v", "builddir=b"]);
        assert_eq!(
            (got[2].pip.as_str(), got[2].config_settings.as_slice()),
            ("markupsafe==2.1.5", ["key=".to_string()].as_slice())
        );
        assert_eq!(got[3].pip_line(), "idna==3.7");
        let by_project = config_settings_by_project(&got).unwrap();
        let mut projects: Vec<&String> = by_project.keys().collect();
        projects.sort();
        assert_eq!(projects, ["markupsafe", "matplotlib", "numpy"]);
        assert_eq!(by_project["matplotlib"], got[0].config_settings);
    }

    #[test]
    fn bad_config_settings_name_file_and_line() {
        for (line, why) in [
            (
                "matplotlib==3.9.2 --config-settings",
                "--config-settings needs KEY=VALUE",
            ),
            ("matplotlib==3.9.2 -C", "-C needs KEY=VALUE"),
            (
                "matplotlib==3.9.2 -C setup-args",
                "`setup-args` is not KEY=VALUE",
            ),
            ("matplotlib==3.9.2 -C=x=y", "`=x=y` is not KEY=VALUE"),
            ("matplotlib==3.9.2 -C -Dx=y", "`-Dx=y` is not KEY=VALUE"),
            (
                "matplotlib==3.9.2 --no-binary :all:",
                "unknown option `--no-binary`",
            ),
            ("matplotlib==3.9.2 -C a=b extra", "unknown option `extra`"),
            (
                "matplotlib==3.9.2 -C 'setup-args=-Da=b'",
                "quotes and backslashes",
            ),
            (
                "https://example.org/x.tar.gz -C a=b",
                "need a named requirement",
            ),
        ] {
            assert_second_line_rejected(line, why);
        }
    }

    #[test]
    fn one_project_given_two_sets_of_config_settings_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.txt");
        std::fs::write(&path, "matplotlib==3.9.2 -C a=1\nMatplotlib -C a=2\n").unwrap();
        let err = config_settings_by_project(&parse_file(&path).unwrap()).unwrap_err();
        let path = path.display();
        assert_eq!(
            format!("{err:#}"),
            format!("{path}:2: matplotlib: other config settings than on {path}:1")
        );
    }

    #[test]
    fn kontain_names_are_passed_on_as_written() {
        assert_eq!(pips("MarkupSafe 2.1.5\n").unwrap(), ["MarkupSafe==2.1.5"]);
    }

    #[test]
    fn names_normalise_as_pep_503_says() {
        for (name, normal) in [
            ("MarkupSafe", "markupsafe"),
            ("zope.interface", "zope-interface"),
            ("zope_interface", "zope-interface"),
            ("a__b", "a-b"),
            ("A-_.-b.C", "a-b-c"),
            ("?", "?"),
        ] {
            assert_eq!(normalized_name(name), normal, "{name}");
        }
    }
}
