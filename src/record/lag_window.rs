//! A seat's worst encoder lag over the last minute, kept as one maximum per second.
//!
//! `max_lag_ms` is a maximum since the seat started, so after any transient (the start of every
//! call at boot, a burst of catch-up after a slow index) it says nothing more about whether the
//! box keeps up. An operator, and the capacity bench, need the worst lag of the recent past:
//! this window holds it without being read often (a scrape every 15 s still sees a 10 ms peak).
//!
//! Runs on the seat's worker every tick: a fixed array, no allocation, O(1) to record.

use std::time::Instant;

/// How far back the window reaches, in whole seconds (the current second included).
pub const WINDOW_S: usize = 60;

pub struct LagWindow {
    started: Instant,
    /// Per slot (second % WINDOW_S): which second it holds, and that second's worst lag.
    slots: [(u64, u64); WINDOW_S],
}

impl LagWindow {
    pub fn new(now: Instant) -> Self {
        LagWindow {
            started: now,
            // Second u64::MAX is never current: an empty slot counts for nothing.
            slots: [(u64::MAX, 0); WINDOW_S],
        }
    }

    fn second(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.started).as_secs()
    }

    /// Records the lag seen at `now`.
    pub fn record(&mut self, now: Instant, lag_ms: u64) {
        let sec = self.second(now);
        let slot = &mut self.slots[(sec % WINDOW_S as u64) as usize];
        if slot.0 != sec {
            *slot = (sec, 0);
        }
        slot.1 = slot.1.max(lag_ms);
    }

    /// The worst lag recorded in the current second and the `WINDOW_S - 1` before it.
    pub fn max_ms(&self, now: Instant) -> u64 {
        let sec = self.second(now);
        let oldest = sec.saturating_sub(WINDOW_S as u64 - 1);
        self.slots
            .iter()
            .filter(|(s, _)| (oldest..=sec).contains(s))
            .map(|&(_, ms)| ms)
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn a_peak_counts_for_one_minute_then_only_what_came_after() {
        let t0 = Instant::now();
        let mut w = LagWindow::new(t0);
        assert_eq!(w.max_ms(t0), 0, "nothing recorded yet");
        w.record(at(t0, 200), 480); // start-up burst in second 0
        w.record(at(t0, 900), 30);
        w.record(at(t0, 30_000), 120); // second 30
        w.record(at(t0, 59_500), 40); // second 59
        assert_eq!(w.max_ms(at(t0, 59_999)), 480, "seconds 0-59 are the window");
        assert_eq!(
            w.max_ms(at(t0, 60_000)),
            120,
            "second 0 left the window at 60 s"
        );
        assert_eq!(w.max_ms(at(t0, 89_999)), 120, "second 30 is still in it");
        assert_eq!(w.max_ms(at(t0, 90_000)), 40);
        assert_eq!(w.max_ms(at(t0, 120_000)), 0, "nothing in the last minute");
    }

    #[test]
    fn a_reused_slot_forgets_the_second_it_held_before() {
        let t0 = Instant::now();
        let mut w = LagWindow::new(t0);
        w.record(at(t0, 5_000), 900); // slot 5, second 5
        w.record(at(t0, 65_100), 10); // slot 5 again, second 65
        assert_eq!(w.max_ms(at(t0, 65_200)), 10, "900 ms was a minute ago");
        w.record(at(t0, 65_300), 25);
        assert_eq!(
            w.max_ms(at(t0, 65_400)),
            25,
            "the same second keeps its maximum"
        );
    }
}
