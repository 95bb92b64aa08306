//! Retention, legal holds, erasure and the garbage step, with a fake clock.
