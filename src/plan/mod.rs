pub mod analyze;
pub mod resolve;
pub mod system_libs;
