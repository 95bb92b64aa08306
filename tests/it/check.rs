//! `callrec check [--repair-*]` against stores damaged by the test.
