//! Symbol resolution across the whole link, before anything is renamed: what the main
//! program provides (its inputs, the system static libraries, the toolchain's runtime
//! libraries), and for every module reference the main program cannot satisfy, which
//! other module exports it.
//!
//! Dynamically such a reference worked only because the provider was loaded earlier with
//! RTLD_GLOBAL. Statically the provider's copy is renamed, so the link binds the
//! reference to the renamed name (a *binding*); link.rs applies them, audit.rs reports them.

use std::collections::BTreeMap;

use super::analyze::Module;
use super::program::Program;

/// How each module's outside references resolve.
#[derive(Debug, Default)]
pub struct Resolution {
    /// (module index, symbol, provider module index)
    pub bindings: Vec<(usize, String, usize)>,
    /// (module index, symbol, provider module indices): more than one module exports it.
    pub ambiguous: Vec<(usize, String, Vec<usize>)>,
    /// (module index, symbol): nothing defines it.
    pub unresolved: Vec<(usize, String)>,
}

pub fn resolve(modules: &[&Module], program: &Program) -> Resolution {
    let mut exporters: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (index, module) in modules.iter().enumerate() {
        for name in &module.exports {
            exporters.entry(name.as_str()).or_default().push(index);
        }
    }
    let mut resolution = Resolution::default();
    for (index, module) in modules.iter().enumerate() {
        for name in module.undefined.iter().chain(&module.weak_undefined) {
            if program.provides(name) {
                continue;
            }
            let providers: Vec<usize> = exporters
                .get(name.as_str())
                .into_iter()
                .flatten()
                .copied()
                .filter(|&p| p != index)
                .collect();
            match providers.as_slice() {
                [] if module.weak_undefined.contains(name) => {}
                [] => resolution.unresolved.push((index, name.clone())),
                [provider] => resolution.bindings.push((index, name.clone(), *provider)),
                _ => resolution.ambiguous.push((index, name.clone(), providers)),
            }
        }
    }
    resolution
}

/// The bindings of each module as `name -> provider's renamed name`.
pub fn bindings_by_module(
    modules: &[&Module],
    resolution: &Resolution,
) -> Vec<BTreeMap<String, String>> {
    let mut out = vec![BTreeMap::new(); modules.len()];
    for (from, name, to) in &resolution.bindings {
        out[*from].insert(name.clone(), modules[*to].renamed(name));
    }
    out
}
