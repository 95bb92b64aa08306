//! Unit tests of the seat state machine, through the [`SeatIo`] seam: frames go in through a
//! real ring and `Seat::tick`; what the seat does to the store is kept by `Rows`, an in-memory
//! stand-in for the index and the call files. These tests must never touch a disk, a device or
//! the real index; `Rows` must stay a plain recorder (no seat logic of its own), except that
//! finishing closes the intervals left open, as `store::finalize_call` does.

use super::*;
use crate::capture::ring::RingWriter;
use crate::record::call::CallError;
use std::path::Path;

const RATE_HZ: u32 = 16_000;
const FRAME_MS: u32 = 20;
const FRAME: usize = (RATE_HZ * FRAME_MS / 1000) as usize;
/// A level the vox threshold (−45 dBFS) hears as voice (−20 dBFS).
const LOUD: f32 = 0.1;
/// A level it does not (−60 dBFS).
const QUIET: f32 = 0.001;

/// One interval row.
#[derive(Debug, Clone, PartialEq)]
struct Interval {
    call_id: i64,
    kind: String,
    start_ms: u64,
    end_ms: Option<u64>,
    by: Option<String>,
    reason: Option<String>,
}

/// One call row and its file: each frame written, as its first sample (`None`: silence).
#[derive(Debug, Default)]
struct Row {
    seat: String,
    mode: String,
    meta: CallMeta,
    status: &'static str,
    end_reason: Option<String>,
    tags: Vec<String>,
    frames: Vec<Option<f32>>,
}

impl Row {
    fn duration_ms(&self) -> u64 {
        self.frames.len() as u64 * u64::from(FRAME_MS)
    }

    fn silent_frames(&self) -> usize {
        self.frames.iter().filter(|f| f.is_none()).count()
    }
}

/// The in-memory side: rows by id (id = index + 1), intervals likewise, and switches for
/// failures.
#[derive(Default)]
struct Rows {
    calls: Vec<Row>,
    intervals: Vec<Interval>,
    full: bool,
    fail_start: bool,
    fail_write: bool,
    fail_finish: bool,
    start_attempts: usize,
    /// Starts are accepted, then refused (as the indexer does when the index refuses the row).
    refuse_later: bool,
    /// Calls refused that the seat has not yet been told about.
    refused: Vec<i64>,
    /// Calls are still being opened: no row id yet.
    opening: bool,
    /// The call's backlog is full: frames are dropped.
    backlog_full: bool,
}

fn failure(call_id: i64, what: &str) -> CallError {
    CallError::Encode {
        call_id,
        message: format!("test: {what} fails"),
    }
}

impl Rows {
    fn row(&self, id: i64) -> &Row {
        &self.calls[(id - 1) as usize]
    }

    fn open_row(&mut self, id: i64) -> Option<&mut Row> {
        self.calls
            .get_mut((id - 1) as usize)
            .filter(|r| r.status == "recording")
    }

    /// Ends the call like the real side: open intervals close at the end of its audio.
    fn close(&mut self, id: i64, status: &'static str, end_reason: &str) {
        let Some(row) = self.open_row(id) else { return };
        row.status = status;
        row.end_reason = Some(end_reason.to_owned());
        let end = row.duration_ms();
        for iv in self.intervals.iter_mut().filter(|i| i.call_id == id) {
            iv.end_ms.get_or_insert(end);
        }
    }

    fn intervals_of(&self, id: i64) -> Vec<Interval> {
        self.intervals
            .iter()
            .filter(|i| i.call_id == id)
            .cloned()
            .collect()
    }
}

impl SeatIo for Rows {
    fn storage_full(&self) -> bool {
        self.full
    }

    fn storage_dir(&self) -> &Path {
        Path::new("/srv/callrec")
    }

    fn start_call(
        &mut self,
        seat_id: &str,
        mode: &'static str,
        meta: CallMeta,
        _dropped_now: u64,
    ) -> Result<i64, CallError> {
        self.start_attempts += 1;
        if self.fail_start {
            return Err(failure(0, "start"));
        }
        self.calls.push(Row {
            seat: seat_id.to_owned(),
            mode: mode.to_owned(),
            meta,
            status: if self.refuse_later {
                "refused"
            } else {
                "recording"
            },
            ..Row::default()
        });
        let id = self.calls.len() as i64;
        if self.refuse_later {
            self.refused.push(id);
        }
        Ok(id)
    }

    fn row_id(&self, call: i64) -> Option<i64> {
        (!self.opening).then_some(call)
    }

    fn lost(&mut self, call: i64) -> bool {
        let was = self.refused.contains(&call);
        self.refused.retain(|c| *c != call);
        was
    }

    fn write_frame(
        &mut self,
        call_id: i64,
        frame: &[f32],
        silent: bool,
        _captured_at: Instant,
        _dropped_now: u64,
    ) -> Result<bool, CallError> {
        if self.fail_write {
            return Err(failure(call_id, "write"));
        }
        if self.backlog_full {
            return Ok(false);
        }
        if let Some(row) = self.open_row(call_id) {
            row.frames.push((!silent).then(|| frame[0]));
        }
        Ok(true)
    }

    fn duration_ms(&self, call_id: i64) -> u64 {
        self.calls
            .get((call_id - 1) as usize)
            .map_or(0, Row::duration_ms)
    }

    fn max_page_latency_ms(&self, _call_id: i64) -> u64 {
        0
    }

    fn finish_call(&mut self, call_id: i64, end_reason: &str) -> Result<(), CallError> {
        if self.fail_finish {
            let err = failure(call_id, "finish");
            self.close(call_id, "interrupted", err.end_reason());
            return Err(err);
        }
        self.close(call_id, "complete", end_reason);
        Ok(())
    }

    fn abandon_call(&mut self, call_id: i64, err: &CallError) {
        self.close(call_id, "interrupted", err.end_reason());
    }

    fn stop_for_full_disk(&mut self, call_id: i64) {
        self.close(call_id, "interrupted", "disk_full");
    }

    fn open_interval(
        &mut self,
        call_id: i64,
        kind: &'static str,
        start_ms: u64,
        by: Option<&str>,
        reason: Option<&str>,
    ) -> Result<i64, CallError> {
        self.intervals.push(Interval {
            call_id,
            kind: kind.to_owned(),
            start_ms,
            end_ms: None,
            by: by.map(str::to_owned),
            reason: reason.map(str::to_owned),
        });
        Ok(self.intervals.len() as i64)
    }

    fn close_interval(
        &mut self,
        _call: i64,
        interval_id: i64,
        end_ms: u64,
    ) -> Result<(), CallError> {
        if let Some(iv) = self.intervals.get_mut((interval_id - 1) as usize) {
            iv.end_ms = Some(end_ms);
        }
        Ok(())
    }

    fn tag(&mut self, call_id: i64, tags: &[String], meta: &CallMeta) -> Result<(), CallError> {
        let Some(row) = self.open_row(call_id) else {
            return Ok(());
        };
        row.tags.extend(tags.iter().cloned());
        let m = &mut row.meta;
        for (field, new) in [
            (&mut m.agent, &meta.agent),
            (&mut m.direction, &meta.direction),
            (&mut m.remote_number, &meta.remote_number),
            (&mut m.campaign, &meta.campaign),
            (&mut m.external_id, &meta.external_id),
        ] {
            if new.is_some() {
                field.clone_from(new);
            }
        }
        Ok(())
    }

    fn set_outcome(&mut self, _call: i64, _outcome: crate::record::indexer::StopOutcome) {}

    // The announcement log is the indexer's (record::completeness); the seat only reports it.
    fn announced(&mut self, _seat: &str, _call: Result<i64, String>) {}

    fn agent_state(
        &mut self,
        _seat: &str,
        change: crate::record::seat_io::AgentChange,
        reply: crate::record::indexer::Reply,
    ) {
        let _ = reply.send(crate::record::control::Response {
            ok: true,
            call_id: change.current_call,
            ..Default::default()
        });
    }

    fn reply_when_done(&mut self, call: i64, reply: crate::record::indexer::Reply) {
        let _ = reply.send(crate::record::control::Response::from_result(Ok::<
            i64,
            String,
        >(
            call
        )));
    }
}

/// A seat with one input carrying both parties at the encoder rate (no resampling), fed
/// through a real ring, and the in-memory side.
struct Bench {
    seat: Seat,
    ring: RingWriter,
    shared: Arc<InputShared>,
    rows: Rows,
}

fn seat_config(mode: SeatMode) -> SeatConfig {
    SeatConfig {
        id: "s1".into(),
        mode,
        inputs: Vec::new(),
        device: None,
        agent_device: None,
        customer_device: None,
        agent_channel: None,
        customer_channel: None,
        vox_threshold_dbfs: -45.0,
        vox_pre_roll_ms: 5 * FRAME_MS,
        vox_stop_after_ms: 10 * FRAME_MS,
        roll_interval_s: 1,
    }
}

impl Bench {
    fn new(mode: SeatMode) -> Self {
        let shared = Arc::new(InputShared::default());
        let (ring, consumer) = RingWriter::new(RATE_HZ, 2, vec![0, 1], shared.clone());
        let parties = [(Party::Agent, 0), (Party::Customer, 1)];
        let mut input = SeatInput::new("s1.input[0]".into(), shared.clone(), &parties, RATE_HZ);
        input.consumer = Some(consumer);
        let Ok(aligner) = Aligner::new(RATE_HZ, RATE_HZ, RATE_HZ, FRAME, false) else {
            panic!("a 16 kHz aligner must build");
        };
        let seat = Seat::new(seat_config(mode), vec![input], aligner, FRAME_MS);
        Bench {
            seat,
            ring,
            shared,
            rows: Rows::default(),
        }
    }

    /// One tick per frame; each frame holds `level` on both channels.
    fn feed(&mut self, levels: &[f32]) {
        for &level in levels {
            self.ring.push(&[level; 2 * FRAME], |v| v);
            self.seat.tick(&mut self.rows);
        }
    }

    fn feed_n(&mut self, level: f32, n: usize) {
        self.feed(&vec![level; n]);
    }

    fn start(&mut self, meta: CallMeta) -> Result<i64, SeatError> {
        self.seat.start(&mut self.rows, meta)
    }

    fn stop(&mut self) -> Result<i64, SeatError> {
        self.seat.stop(&mut self.rows, "stop")
    }

    fn state(&self) -> String {
        self.seat
            .status
            .lock()
            .map(|s| s.state.clone())
            .unwrap_or_default()
    }
}

/// Levels that tell frames apart (all below the vox threshold when `base` is QUIET).
fn marked(base: f32, n: usize) -> Vec<f32> {
    (0..n).map(|i| base * (1.0 + i as f32 / 100.0)).collect()
}

#[test]
fn start_inserts_a_recording_row_and_stop_completes_it() -> Result<(), SeatError> {
    let mut b = Bench::new(SeatMode::Control);
    b.feed_n(LOUD, 3);
    assert!(
        b.rows.calls.is_empty(),
        "a control seat records only when told"
    );
    let meta = CallMeta {
        agent: Some("a7".into()),
        direction: Some("inbound".into()),
        ..CallMeta::default()
    };
    let id = b.start(meta.clone())?;
    let row = b.rows.row(id);
    assert_eq!((row.status, row.seat.as_str()), ("recording", "s1"));
    assert_eq!((row.mode.as_str(), &row.meta), ("control", &meta));
    b.feed(&marked(LOUD, 10));
    assert_eq!(b.state(), "recording");
    assert_eq!(b.seat.current_call(), Some(id));
    assert_eq!(b.stop()?, id);
    let row = b.rows.row(id);
    assert_eq!(row.status, "complete");
    assert_eq!(row.end_reason.as_deref(), Some("stop"));
    assert_eq!(row.duration_ms(), 200);
    let written: Vec<Option<f32>> = marked(LOUD, 10).into_iter().map(Some).collect();
    assert_eq!(row.frames, written, "every frame, in order, none silent");
    b.feed_n(LOUD, 3);
    assert_eq!(b.rows.row(id).duration_ms(), 200, "nothing after the stop");
    assert_eq!(b.state(), "idle");
    assert_eq!(b.seat.current_call(), None);
    Ok(())
}

#[test]
fn start_while_recording_and_stop_while_idle_are_refused() -> Result<(), SeatError> {
    let mut b = Bench::new(SeatMode::Control);
    let err = b.stop().err();
    assert!(
        matches!(&err, Some(SeatError::NotRecording { seat }) if seat == "s1"),
        "{err:?}"
    );
    let id = b.start(CallMeta::default())?;
    let err = b.start(CallMeta::default()).err();
    assert!(
        matches!(err, Some(SeatError::AlreadyRecording { call: CallName(Some(c)), .. }) if c == id),
        "{err:?}"
    );
    assert_eq!(b.rows.calls.len(), 1, "a refused start writes no row");
    b.feed_n(LOUD, 2);
    assert_eq!(b.rows.row(id).duration_ms(), 40, "the open call goes on");
    Ok(())
}

#[test]
fn pause_writes_silence_and_records_the_interval() -> Result<(), SeatError> {
    let mut b = Bench::new(SeatMode::Control);
    let id = b.start(CallMeta::default())?;
    b.feed_n(LOUD, 5);
    assert_eq!(b.seat.pause(&mut b.rows, Some("cti"), Some("card"))?, id);
    b.feed_n(LOUD, 3);
    assert_eq!(b.state(), "paused");
    assert_eq!(b.seat.resume(&mut b.rows)?, id);
    b.feed_n(LOUD, 2);
    assert_eq!(b.state(), "recording");
    b.stop()?;
    let row = b.rows.row(id);
    let mut expect = vec![Some(LOUD); 5];
    expect.extend([None; 3]);
    expect.extend([Some(LOUD); 2]);
    assert_eq!(row.frames, expect, "paused frames are silence, never audio");
    assert_eq!(row.duration_ms(), 200, "silence of the same length");
    let pause = Interval {
        call_id: id,
        kind: "pause".into(),
        start_ms: 100,
        end_ms: Some(160),
        by: Some("cti".into()),
        reason: Some("card".into()),
    };
    assert_eq!(b.rows.intervals_of(id), [pause]);
    Ok(())
}

#[test]
fn pause_while_paused_and_resume_while_not_paused_are_refused() -> Result<(), SeatError> {
    let mut b = Bench::new(SeatMode::Control);
    let err = b.seat.pause(&mut b.rows, None, None).err();
    assert!(
        matches!(err, Some(SeatError::NotRecording { .. })),
        "{err:?}"
    );
    let err = b.seat.resume(&mut b.rows).err();
    assert!(
        matches!(err, Some(SeatError::NotRecording { .. })),
        "{err:?}"
    );
    let id = b.start(CallMeta::default())?;
    let err = b.seat.resume(&mut b.rows).err();
    assert!(
        matches!(err, Some(SeatError::NotPaused { call: CallName(Some(c)), .. }) if c == id),
        "{err:?}"
    );
    b.feed_n(LOUD, 2);
    b.seat.pause(&mut b.rows, None, None)?;
    b.feed_n(LOUD, 2);
    let err = b.seat.pause(&mut b.rows, None, None).err();
    assert!(
        matches!(err, Some(SeatError::AlreadyPaused { call: CallName(Some(c)), .. }) if c == id),
        "{err:?}"
    );
    b.feed_n(LOUD, 2);
    b.seat.resume(&mut b.rows)?;
    let err = b.seat.resume(&mut b.rows).err();
    assert!(matches!(err, Some(SeatError::NotPaused { .. })), "{err:?}");
    let ivs = b.rows.intervals_of(id);
    assert_eq!(ivs.len(), 1, "a refused pause opens no second interval");
    assert_eq!((ivs[0].start_ms, ivs[0].end_ms), (40, Some(120)));
    assert_eq!(b.rows.row(id).silent_frames(), 4);
    Ok(())
}

#[test]
fn stop_while_paused_ends_the_pause_with_the_call() -> Result<(), SeatError> {
    let mut b = Bench::new(SeatMode::Control);
    let id = b.start(CallMeta::default())?;
    b.feed_n(LOUD, 3);
    b.seat.pause(&mut b.rows, Some("cti"), None)?;
    b.feed_n(LOUD, 4);
    assert_eq!(b.stop()?, id);
    let row = b.rows.row(id);
    assert_eq!((row.status, row.silent_frames()), ("complete", 4));
    let ivs = b.rows.intervals_of(id);
    assert_eq!(
        (ivs.len(), ivs[0].start_ms, ivs[0].end_ms),
        (1, 60, Some(140))
    );
    // The next call starts unpaused.
    let next = b.start(CallMeta::default())?;
    b.feed_n(LOUD, 2);
    assert_eq!(b.rows.row(next).frames, [Some(LOUD); 2]);
    assert_eq!(b.state(), "recording");
    assert!(b.rows.intervals_of(next).is_empty());
    Ok(())
}

#[test]
fn vox_starts_on_voice_with_its_pre_roll_and_stops_after_silence() {
    let mut b = Bench::new(SeatMode::Vox);
    let quiet = marked(QUIET, 8);
    b.feed(&quiet);
    assert!(b.rows.calls.is_empty(), "silence starts nothing");
    b.feed(&[LOUD]);
    assert_eq!(b.rows.calls.len(), 1);
    let row = b.rows.row(1);
    assert_eq!((row.status, row.mode.as_str()), ("recording", "vox"));
    // Pre-roll: the last 5 frames (100 ms), the loud one last, in order.
    let pre: Vec<Option<f32>> = quiet[4..].iter().copied().chain([LOUD]).map(Some).collect();
    assert_eq!(row.frames, pre);
    b.feed_n(LOUD, 3);
    b.feed_n(QUIET, 9);
    assert_eq!(
        b.rows.row(1).status,
        "recording",
        "9 quiet frames: 180 ms < 200 ms"
    );
    b.feed_n(QUIET, 1);
    let row = b.rows.row(1);
    assert_eq!(row.status, "complete");
    assert_eq!(row.end_reason.as_deref(), Some("vox_silence"));
    assert_eq!(row.duration_ms(), (5 + 3 + 9) * 20);
    b.feed_n(QUIET, 20);
    assert_eq!(
        b.rows.calls.len(),
        1,
        "silence after the call starts nothing"
    );
    b.feed(&[LOUD]);
    assert_eq!(b.rows.calls.len(), 2, "the next voice starts the next call");
    assert_eq!(b.rows.row(2).frames.len(), 5);
}

#[test]
fn vox_does_not_retry_a_failed_start_at_once() {
    let mut b = Bench::new(SeatMode::Vox);
    b.rows.fail_start = true;
    b.feed_n(LOUD, 10);
    assert_eq!(b.rows.start_attempts, 1, "one attempt, not one per frame");
    assert!(b.rows.calls.is_empty());
    b.rows.fail_start = false;
    b.feed_n(LOUD, 10);
    assert_eq!(b.rows.start_attempts, 1, "still waiting out RETRY_START");
    b.seat.retry_after = Some(Instant::now());
    b.feed(&[LOUD]);
    assert_eq!(b.rows.calls.len(), 1, "retried once the pause is over");
    assert_eq!(b.rows.row(1).status, "recording");
}

#[test]
fn continuous_rolls_the_call_at_its_interval_without_losing_a_frame() {
    let mut b = Bench::new(SeatMode::Continuous);
    b.feed_n(LOUD, 120);
    let rows = &b.rows.calls;
    assert_eq!(rows.len(), 3);
    for row in &rows[..2] {
        assert_eq!((row.status, row.mode.as_str()), ("complete", "continuous"));
        assert_eq!(
            (row.end_reason.as_deref(), row.duration_ms()),
            (Some("roll"), 1000)
        );
    }
    assert_eq!((rows[2].status, rows[2].duration_ms()), ("recording", 400));
    let written: usize = rows.iter().map(|r| r.frames.len()).sum();
    assert_eq!(written, 120, "every frame lands in exactly one call");
}

#[test]
fn a_device_down_while_idle_records_nothing() {
    let mut b = Bench::new(SeatMode::Control);
    b.shared.down.store(true, Ordering::Relaxed);
    b.seat.tick(&mut b.rows);
    b.shared.down.store(false, Ordering::Relaxed);
    b.seat.tick(&mut b.rows);
    assert!(b.rows.calls.is_empty() && b.rows.intervals.is_empty());
    assert_eq!(b.state(), "idle");
}

#[test]
fn a_device_down_opens_a_gap_interval_until_it_comes_back() -> Result<(), SeatError> {
    let mut b = Bench::new(SeatMode::Control);
    b.shared.set_error("unplugged".into());
    let id = b.start(CallMeta::default())?;
    b.feed_n(LOUD, 5);
    b.shared.down.store(true, Ordering::Relaxed);
    b.seat.tick(&mut b.rows);
    let inputs_down = b.seat.status.lock().map(|s| s.inputs_down.clone());
    assert_eq!(inputs_down.ok(), Some(vec!["s1.input[0]".to_owned()]));
    b.seat.tick(&mut b.rows);
    b.shared.down.store(false, Ordering::Relaxed);
    b.seat.tick(&mut b.rows);
    b.feed_n(LOUD, 2);
    b.stop()?;
    let row = b.rows.row(id);
    // While down, the timeline goes on as silence (audio frames of zeros), from the stall on.
    let filled = row.frames.len() - 7;
    assert!(
        filled >= 25,
        "at least STALL_MS of fill, got {filled} frames"
    );
    assert!(row.frames[5..5 + filled].iter().all(|f| *f == Some(0.0)));
    let ivs = b.rows.intervals_of(id);
    assert_eq!(ivs.len(), 1, "{ivs:?}");
    let gap = &ivs[0];
    assert_eq!((gap.kind.as_str(), gap.start_ms), ("gap", 100));
    assert_eq!(gap.end_ms, Some(100 + filled as u64 * 20));
    assert_eq!(gap.by.as_deref(), Some("device"));
    assert_eq!(gap.reason.as_deref(), Some("s1.input[0] down: unplugged"));
    Ok(())
}

#[test]
fn login_names_the_agent_of_later_calls_and_logout_forgets_it() -> Result<(), SeatError> {
    let mut b = Bench::new(SeatMode::Control);
    b.seat.set_agent(Some("a7".into()));
    let agent = b.seat.status.lock().map(|s| s.agent.clone());
    assert_eq!(agent.ok().flatten().as_deref(), Some("a7"));
    let first = b.start(CallMeta::default())?;
    b.seat.set_agent(None);
    b.stop()?;
    assert_eq!(b.rows.row(first).meta.agent.as_deref(), Some("a7"));
    let second = b.start(CallMeta::default())?;
    b.stop()?;
    assert_eq!(b.rows.row(second).meta.agent, None, "logged out");
    b.seat.set_agent(Some("a7".into()));
    let named = CallMeta {
        agent: Some("b2".into()),
        ..CallMeta::default()
    };
    let third = b.start(named)?;
    assert_eq!(b.rows.row(third).meta.agent.as_deref(), Some("b2"));
    Ok(())
}

#[test]
fn tag_adds_tags_and_details_to_the_open_call_only() -> Result<(), SeatError> {
    let mut b = Bench::new(SeatMode::Control);
    let tags = vec!["vip".to_owned()];
    let err = b.seat.tag(&mut b.rows, &tags, &CallMeta::default()).err();
    assert!(
        matches!(err, Some(SeatError::NotRecording { .. })),
        "{err:?}"
    );
    let sideways = CallMeta {
        direction: Some("sideways".into()),
        ..CallMeta::default()
    };
    let err = b.start(sideways.clone()).err();
    assert!(
        matches!(&err, Some(SeatError::Direction(d)) if d == "sideways"),
        "{err:?}"
    );
    assert!(b.rows.calls.is_empty(), "a refused start writes no row");
    let id = b.start(CallMeta {
        agent: Some("a7".into()),
        ..CallMeta::default()
    })?;
    let campaign = CallMeta {
        campaign: Some("winter".into()),
        ..CallMeta::default()
    };
    assert_eq!(b.seat.tag(&mut b.rows, &tags, &campaign)?, id);
    let err = b.seat.tag(&mut b.rows, &tags, &sideways).err();
    assert!(matches!(err, Some(SeatError::Direction(_))), "{err:?}");
    let row = b.rows.row(id);
    assert_eq!(row.tags, tags);
    assert_eq!(row.meta.campaign.as_deref(), Some("winter"));
    assert_eq!(
        row.meta.agent.as_deref(),
        Some("a7"),
        "fields not named are kept"
    );
    assert_eq!(row.meta.direction, None);
    Ok(())
}

#[test]
fn full_storage_stops_the_open_call_and_refuses_starts() -> Result<(), SeatError> {
    let mut b = Bench::new(SeatMode::Control);
    let id = b.start(CallMeta::default())?;
    b.feed_n(LOUD, 3);
    b.rows.full = true;
    b.feed_n(LOUD, 3);
    let row = b.rows.row(id);
    assert_eq!(
        (row.status, row.end_reason.as_deref()),
        ("interrupted", Some("disk_full"))
    );
    assert_eq!(row.duration_ms(), 60, "nothing written once full");
    assert_eq!(b.state(), "idle");
    let err = b.start(CallMeta::default()).err();
    assert!(
        matches!(err, Some(SeatError::StorageFull { .. })),
        "{err:?}"
    );
    let text = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        text.contains("/srv/callrec is full") && text.contains("resumes"),
        "{text}"
    );
    assert_eq!(b.rows.start_attempts, 1, "no attempt while full");
    Ok(())
}

#[test]
fn automatic_starts_wait_for_space_without_trying() {
    let mut b = Bench::new(SeatMode::Continuous);
    b.rows.full = true;
    b.feed_n(LOUD, 10);
    assert_eq!(
        b.rows.start_attempts, 0,
        "the guard's flag is the whole answer"
    );
    b.rows.full = false;
    b.feed_n(LOUD, 1);
    assert_eq!(
        b.rows.calls.len(),
        1,
        "the first frame after space returns starts"
    );
    assert_eq!(b.rows.row(1).frames.len(), 1);
}

#[test]
fn a_write_error_abandons_the_call_and_frees_the_seat() -> Result<(), SeatError> {
    let mut b = Bench::new(SeatMode::Control);
    let id = b.start(CallMeta::default())?;
    b.feed_n(LOUD, 2);
    b.rows.fail_write = true;
    b.feed_n(LOUD, 1);
    let row = b.rows.row(id);
    assert_eq!(
        (row.status, row.end_reason.as_deref()),
        ("interrupted", Some("write_error"))
    );
    assert_eq!(row.duration_ms(), 40);
    assert_eq!(
        (b.state(), b.seat.current_call()),
        ("idle".to_owned(), None)
    );
    b.rows.fail_write = false;
    let next = b.start(CallMeta::default())?;
    assert_eq!(next, id + 1, "the seat takes a new call");
    Ok(())
}

#[test]
fn a_failed_finish_reports_it_and_frees_the_seat() {
    let mut b = Bench::new(SeatMode::Control);
    let id = b.start(CallMeta::default()).ok();
    b.rows.fail_finish = true;
    let err = b.stop().err();
    assert!(
        matches!(err, Some(SeatError::Finish { call_id, .. }) if Some(call_id) == id),
        "{err:?}"
    );
    let text = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(text.contains("sealed as interrupted"), "{text}");
    assert_eq!(b.seat.current_call(), None);
    let err = b.stop().err();
    assert!(
        matches!(err, Some(SeatError::NotRecording { .. })),
        "{err:?}"
    );
}

#[test]
fn shutdown_finishes_the_open_call() -> Result<(), SeatError> {
    let mut b = Bench::new(SeatMode::Control);
    let id = b.start(CallMeta::default())?;
    b.feed_n(LOUD, 4);
    b.seat.pause(&mut b.rows, None, None)?;
    b.feed_n(LOUD, 2);
    b.seat.shutdown(&mut b.rows);
    let row = b.rows.row(id);
    assert_eq!(
        (row.status, row.end_reason.as_deref()),
        ("complete", Some("shutdown"))
    );
    let ivs = b.rows.intervals_of(id);
    assert_eq!((ivs[0].start_ms, ivs[0].end_ms), (80, Some(120)));
    assert_eq!(b.state(), "idle");
    b.seat.shutdown(&mut b.rows);
    assert_eq!(b.rows.calls.len(), 1, "an idle seat has nothing to finish");
    Ok(())
}

#[test]
fn refusals_say_what_to_do() {
    let seat = "s1".to_owned();
    let cases = [
        (
            SeatError::NotRecording { seat: seat.clone() },
            "start a call first",
        ),
        (
            SeatError::AlreadyRecording {
                seat: seat.clone(),
                call: CallName(Some(4)),
            },
            "stop it first",
        ),
        (
            SeatError::AlreadyPaused {
                seat: seat.clone(),
                call: CallName(None),
            },
            "resume it first",
        ),
        (
            SeatError::Direction("up".into()),
            "\"inbound\" or \"outbound\"",
        ),
        (
            SeatError::Pause {
                seat,
                call_id: 4,
                source: failure(4, "pause"),
            },
            "silence is recorded",
        ),
    ];
    for (err, hint) in cases {
        let text = err.to_string();
        assert!(text.contains(hint), "{text:?} lacks {hint:?}");
    }
}

#[test]
fn a_call_the_index_has_not_opened_yet_shows_as_starting_and_keeps_its_frames(
) -> Result<(), SeatError> {
    let mut b = Bench::new(SeatMode::Control);
    b.rows.opening = true;
    let id = b.start(CallMeta::default())?;
    b.feed(&marked(QUIET, 3));
    assert_eq!(b.state(), "starting");
    assert_eq!(
        b.seat.status.lock().map(|s| s.call_id).ok().flatten(),
        None,
        "no row id to show yet"
    );
    let err = b.start(CallMeta::default()).err();
    assert!(
        matches!(
            err,
            Some(SeatError::AlreadyRecording {
                call: CallName(None),
                ..
            })
        ),
        "{err:?}"
    );
    b.rows.opening = false;
    b.feed(&marked(QUIET, 2));
    assert_eq!(b.state(), "recording");
    b.stop()?;
    assert_eq!(
        b.rows.row(id).frames.len(),
        5,
        "frames written while starting"
    );
    Ok(())
}

#[test]
fn a_start_the_index_refuses_later_frees_the_seat_and_automatic_starts_wait() {
    let mut b = Bench::new(SeatMode::Control);
    b.rows.refuse_later = true;
    assert!(b.start(CallMeta::default()).is_ok(), "accepted at first");
    b.feed_n(QUIET, 1);
    assert_eq!(b.state(), "idle", "the refusal reached the seat");
    assert!(matches!(b.stop(), Err(SeatError::NotRecording { .. })));

    let mut v = Bench::new(SeatMode::Vox);
    v.rows.refuse_later = true;
    v.feed_n(LOUD, 20);
    assert_eq!(
        v.rows.start_attempts, 1,
        "one attempt, then the pause before retrying"
    );
    assert_eq!(v.state(), "idle");
}

#[test]
fn frames_the_side_could_not_hold_count_as_dropped() -> Result<(), SeatError> {
    let mut b = Bench::new(SeatMode::Control);
    b.start(CallMeta::default())?;
    b.rows.backlog_full = true;
    b.feed_n(QUIET, 4);
    let dropped = b.seat.status.lock().map(|s| s.dropped_frames).unwrap_or(0);
    assert_eq!(dropped, 4);
    Ok(())
}

#[test]
fn hold_marks_time_and_never_silences_the_audio() -> Result<(), SeatError> {
    let mut b = Bench::new(SeatMode::Control);
    let err = b.seat.hold(&mut b.rows, None, None).err();
    assert!(
        matches!(err, Some(SeatError::NotRecording { .. })),
        "{err:?}"
    );
    let id = b.start(CallMeta::default())?;
    let err = b.seat.unhold(&mut b.rows).err();
    assert!(
        matches!(err, Some(SeatError::NotOnHold { call: CallName(Some(c)), .. }) if c == id),
        "{err:?}"
    );
    b.feed_n(LOUD, 2);
    assert_eq!(b.seat.hold(&mut b.rows, Some("cti"), Some("transfer"))?, id);
    b.feed_n(LOUD, 3);
    // On hold the seat still records: its state stays `recording`, its status says on hold.
    assert_eq!(b.state(), "recording");
    assert!(b.seat.status.lock().map(|s| s.on_hold).unwrap_or(false));
    let err = b.seat.hold(&mut b.rows, None, None).err();
    assert!(
        matches!(err, Some(SeatError::AlreadyOnHold { .. })),
        "{err:?}"
    );
    // A PCI pause inside the hold silences only its own frames.
    b.seat.pause(&mut b.rows, None, None)?;
    b.feed_n(LOUD, 2);
    b.seat.resume(&mut b.rows)?;
    b.feed_n(LOUD, 1);
    b.seat.unhold(&mut b.rows)?;
    b.feed_n(LOUD, 2);
    // A second hold is left open: it ends with the call.
    b.seat.hold(&mut b.rows, None, None)?;
    b.feed_n(LOUD, 1);
    b.stop()?;
    let row = b.rows.row(id);
    assert_eq!(row.duration_ms(), 220);
    assert_eq!(row.silent_frames(), 2, "only the paused frames are silence");
    let ivs: Vec<(String, u64, Option<u64>)> = b
        .rows
        .intervals_of(id)
        .into_iter()
        .map(|i| (i.kind, i.start_ms, i.end_ms))
        .collect();
    assert_eq!(
        ivs,
        [
            ("hold".into(), 40, Some(160)),
            ("pause".into(), 100, Some(140)),
            ("hold".into(), 200, Some(220)),
        ]
    );
    Ok(())
}

#[test]
fn wrapup_is_refused_while_a_call_records() -> Result<(), SeatError> {
    let mut b = Bench::new(SeatMode::Control);
    assert!(b.seat.check_not_recording(&b.rows).is_ok());
    let id = b.start(CallMeta::default())?;
    let err = b.seat.check_not_recording(&b.rows).err();
    assert!(
        matches!(err, Some(SeatError::WrapupWhileRecording { call: CallName(Some(c)), .. }) if c == id),
        "{err:?}"
    );
    b.stop()?;
    assert!(b.seat.check_not_recording(&b.rows).is_ok());
    Ok(())
}
