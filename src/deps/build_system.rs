//! Building a source tree with its own build system (autotools, meson or CMake, found
//! by its files), configured static-only and position-independent, installed under
//! DESTDIR so that the prefix compiled in is the cache entry's final path.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::recipe::Recipe;
use crate::progress::Step;

/// `SOURCE_DATE_EPOCH` for every build: `__DATE__` and friends come out the same each time.
const SOURCE_DATE_EPOCH: &str = "1";

/// One build: the tree, where it installs, and how.
pub struct Build<'a> {
    pub tree: PathBuf,
    /// The final prefix (compiled into `.pc` files and paths).
    pub prefix: PathBuf,
    /// Where `make install DESTDIR=` puts the prefix for now.
    pub destdir: PathBuf,
    pub logs: PathBuf,
    pub jobs: usize,
    pub recipe: Option<&'a Recipe>,
    /// `name version`, for progress lines.
    pub what: String,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum System {
    Autotools,
    Meson,
    Cmake,
}

impl Build<'_> {
    /// Configure, build and install into DESTDIR + prefix.
    pub fn run(&self) -> Result<()> {
        let system = self.detect()?;
        match system {
            System::Autotools => self.autotools()?,
            System::Meson => self.meson()?,
            System::Cmake => self.cmake()?,
        }
        self.write_pkgconfig()
    }

    fn detect(&self) -> Result<System> {
        let has = |file: &str| self.tree.join(file).is_file();
        let own_configure = self.recipe.is_some_and(|r| !r.configure_command.is_empty());
        Ok(match () {
            _ if own_configure || has("configure") || has("configure.ac") => System::Autotools,
            _ if has("meson.build") => System::Meson,
            _ if has("CMakeLists.txt") => System::Cmake,
            _ => bail!(
                "{}: no configure, meson.build or CMakeLists.txt; add a recipe in extensions/deps/",
                self.tree.display()
            ),
        })
    }

    /// `env VAR=… program args…`: the environment shows in the log's first line.
    fn command(&self, args: &[&str]) -> Vec<String> {
        let flags = format!(
            "-O2 -fPIC -ffile-prefix-map={}=.",
            self.tree.to_string_lossy()
        );
        let mut argv: Vec<String> = vec![
            "env".into(),
            // a dlstatic run under make (`make test`) must not hand that make's level and
            // flags to the dependency's own build: PostgreSQL generates its headers only
            // at MAKELEVEL 0, and a foreign jobserver is not this build's
            "-u".into(),
            "MAKELEVEL".into(),
            "-u".into(),
            "MAKEFLAGS".into(),
            "-u".into(),
            "MFLAGS".into(),
            format!("CFLAGS={flags}"),
            format!("CXXFLAGS={flags}"),
            format!("SOURCE_DATE_EPOCH={SOURCE_DATE_EPOCH}"),
            // (Debian's binutils make deterministic archives by default: no ar flags needed)
            format!("DESTDIR={}", self.destdir.to_string_lossy()),
        ];
        argv.extend(args.iter().map(|a| a.to_string()));
        argv
    }

    fn step(&self, name: &str, args: &[&str], cwd: &Path) -> Result<()> {
        let log = self.logs.join(format!("{name}.log"));
        Step::new(&format!("{name} {}", self.what), &log).run(&self.command(args), cwd)
    }

    fn autotools(&self) -> Result<()> {
        let recipe = self.recipe;
        let configure = self.configure_command()?;
        let configure: Vec<&str> = configure.iter().map(String::as_str).collect();
        self.step("configure", &configure, &self.tree)?;
        let jobs = format!("-j{}", self.jobs);
        let mut make = vec!["make", jobs.as_str()];
        make.extend(
            recipe
                .iter()
                .flat_map(|r| r.make_targets.iter().map(String::as_str)),
        );
        let dirs: Vec<&str> = recipe.map_or(Vec::new(), |r| {
            r.make_dirs.iter().map(String::as_str).collect()
        });
        if dirs.is_empty() {
            self.step("make", &make, &self.tree)?;
        }
        for dir in dirs {
            self.step("make", &make, &self.tree.join(dir))?;
        }
        // on make's command line too: a Makefile that sets `DESTDIR =` itself (OpenSSL's)
        // overrides the environment
        let destdir = format!("DESTDIR={}", self.destdir.to_string_lossy());
        let mut install = vec!["make", destdir.as_str()];
        match recipe.filter(|r| !r.install_targets.is_empty()) {
            Some(recipe) => install.extend(recipe.install_targets.iter().map(String::as_str)),
            None => install.push("install"),
        }
        self.install(&install)
    }

    /// A recipe's `[install]` table if it has one, else the build system's own `install`
    /// command.
    fn install(&self, install: &[&str]) -> Result<()> {
        match self.recipe.filter(|r| !r.install.is_empty()) {
            Some(recipe) => self.install_listed(recipe),
            None => self.step("install", install, &self.tree),
        }
    }

    /// The recipe's own configure command (`@prefix@` filled in), or `./configure`
    /// static-only and PIC with the recipe's extra arguments, regenerated first when
    /// it is stale.
    fn configure_command(&self) -> Result<Vec<String>> {
        let prefix = self.prefix.to_string_lossy();
        if let Some(recipe) = self.recipe.filter(|r| !r.configure_command.is_empty()) {
            let fill = |arg: &String| arg.replace("@prefix@", &prefix);
            return Ok(recipe.configure_command.iter().map(fill).collect());
        }
        if self.configure_is_stale() {
            self.step("autoreconf", &["autoreconf", "-fi"], &self.tree)?;
        }
        let generic = [
            "./configure",
            &format!("--prefix={prefix}"),
            "--disable-shared",
            "--enable-static",
            "--with-pic",
            "--disable-dependency-tracking",
        ];
        let extra = self.recipe.iter().flat_map(|r| r.configure.iter());
        Ok(generic
            .iter()
            .map(|a| a.to_string())
            .chain(extra.cloned())
            .collect())
    }

    /// No `configure`, or a Debian patch changed `configure.ac` after it was generated
    /// (as debhelper does, regenerate it: the Makefile would otherwise try, and fail
    /// on the exact automake version it was made with).
    fn configure_is_stale(&self) -> bool {
        let modified = |file: &str| {
            std::fs::metadata(self.tree.join(file))
                .and_then(|m| m.modified())
                .ok()
        };
        match modified("configure") {
            None => true,
            Some(configure) => ["configure.ac", "configure.in"]
                .iter()
                .any(|input| modified(input).is_some_and(|t| t > configure)),
        }
    }

    fn meson(&self) -> Result<()> {
        let prefix = format!("--prefix={}", self.prefix.to_string_lossy());
        self.step(
            "configure",
            &[
                "meson",
                "setup",
                "dlstatic-build",
                &prefix,
                "--libdir=lib",
                "--buildtype=release",
                "--default-library=static",
                "-Db_staticpic=true",
            ],
            &self.tree,
        )?;
        let jobs = self.jobs.to_string();
        self.step(
            "make",
            &["ninja", "-C", "dlstatic-build", "-j", &jobs],
            &self.tree,
        )?;
        self.install(&["meson", "install", "-C", "dlstatic-build"])
    }

    fn cmake(&self) -> Result<()> {
        let prefix = format!("-DCMAKE_INSTALL_PREFIX={}", self.prefix.to_string_lossy());
        self.step(
            "configure",
            &[
                "cmake",
                "-S",
                ".",
                "-B",
                "dlstatic-build",
                &prefix,
                "-DCMAKE_INSTALL_LIBDIR=lib",
                "-DCMAKE_BUILD_TYPE=Release",
                "-DBUILD_SHARED_LIBS=OFF",
                "-DCMAKE_POSITION_INDEPENDENT_CODE=ON",
            ],
            &self.tree,
        )?;
        let jobs = self.jobs.to_string();
        self.step(
            "make",
            &["cmake", "--build", "dlstatic-build", "-j", &jobs],
            &self.tree,
        )?;
        self.install(&["cmake", "--install", "dlstatic-build"])
    }

    /// The installed prefix as it is now, under DESTDIR.
    pub fn staged_prefix(&self) -> PathBuf {
        self.destdir
            .join(self.prefix.strip_prefix("/").unwrap_or(&self.prefix))
    }

    /// A recipe's `[install]` table: prefix path ← tree path.
    fn install_listed(&self, recipe: &Recipe) -> Result<()> {
        for (to, from) in &recipe.install {
            let (from, to) = (self.tree.join(from), self.staged_prefix().join(to));
            std::fs::create_dir_all(to.parent().unwrap())?;
            std::fs::copy(&from, &to).with_context(|| {
                format!(
                    "extensions/deps/lib{}.toml: install: {} was not built",
                    recipe.library,
                    from.display()
                )
            })?;
        }
        Ok(())
    }

    fn write_pkgconfig(&self) -> Result<()> {
        let Some(recipe) = self.recipe else {
            return Ok(());
        };
        let version = self.what.rsplit(' ').next().unwrap_or("");
        // the upstream version: `15.18` of `15.18-0+deb12u1`
        let upstream = version.split('-').next().unwrap_or(version);
        for (name, text) in &recipe.pkgconfig {
            let dir = self.staged_prefix().join("lib/pkgconfig");
            std::fs::create_dir_all(&dir)?;
            let text = text
                .replace("@prefix@", &self.prefix.to_string_lossy())
                .replace("@version@", upstream);
            std::fs::write(dir.join(format!("{name}.pc")), text.trim_start())?;
        }
        Ok(())
    }
}
