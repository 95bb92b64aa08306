//! Quality assurance: scorecards (the forms reviewers fill in for a call), and later evaluations,
//! spot-check sampling, calibration and reports.

pub mod sampling;
pub mod scorecard;
pub mod script;
pub mod transcript;
