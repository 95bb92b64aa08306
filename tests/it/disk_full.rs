//! Disk full: recording into a small filesystem made by the test.
