//! Active alarms (disk full, disk pressure the guard could not relieve).
