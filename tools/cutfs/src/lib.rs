//! cutfs: a FUSE filesystem for power-cut tests. Writes pass through to files under a state
//! directory at once, but a "cut" forgets everything not yet made durable: a file's contents by
//! fsync/fdatasync of the file, a new, renamed or removed name by fsync of its directory (the
//! LazyFS model). See [`model`] for the exact rules and [`fs`] for the FUSE side.
//!
//! It is a test tool: it must never be used for data anyone wants to keep (nothing it stores is
//! itself crash-safe: if cutfs dies, the mounted state is lost).

pub mod fs;
pub mod model;
