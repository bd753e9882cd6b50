//! Python on top of the generic pipeline: CPython built under capture, third-party
//! packages from modules.txt, the payload directory, and its verification.

pub mod build;
pub mod cpython;
pub mod modules_txt;
mod package_build;
pub mod packages;
pub mod payload;
pub mod site;
pub mod verify;
