//! Call scripts: ordered required steps with time windows; spot-check outcomes; suggestions from transcripts.
