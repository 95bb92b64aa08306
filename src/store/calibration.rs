//! Calibration sessions: several reviewers score one call blind; results side by side.
