//! Scripts (versioned), spot checks against them, and imported transcripts with FTS5 search.
