//! Evidence: what lets a third party trust a recording without trusting callrec.
//!
//! - the ledger itself (an append-only, hash-chained record of every finalized call and every
//!   deletion) is a table of the index, so it lives in [`crate::store::ledger`], written in the
//!   same transaction that finalizes the call; this module reads it.
//! - [`key`]: the box's Ed25519 key (RFC 8032), kept as PEM files (RFC 8410) that OpenSSL reads.
//! - [`bundle`]: `callrec export`: one folder per call that `sha256sum` and `openssl` can verify.
//! - [`verify`]: `callrec verify`: a bundle, or the whole store (files vs index vs ledger).
//! - [`zip`]: a bundle folder as one stored zip, for the browser's download.
//!
//! Nothing in this module ever changes a recording, an index row or a ledger entry after the
//! fact: it only appends (ledger, audit) and reads.

pub mod bundle;
pub mod erasure;
pub mod key;
pub mod verify;
pub mod zip;
