//! `callrec check`: consistency between index, files, ledger and peaks.
