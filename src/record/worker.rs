//! A fixed pool of worker threads (not a thread per seat). Each owns a set of seats and, every
//! 10 ms, drains their rings, resamples, encodes and writes; it also executes control requests
//! for its seats between passes, so a seat is only ever touched by one thread. The worker's
//! `StoreIo` holds the open call files of its seats.
//!
//! A worker must never wait for the index or an fsync (the indexer thread does both, see
//! `indexer`): a request that needs the index is answered once the indexer is done, by the
//! indexer or, for a start, by this worker on a later pass; the worker itself goes on draining.

use super::control::{Request, Response, Routed};
use super::indexer::{AgentState, CallToken, Reply, StopOutcome};
use super::seat::Seat;
use super::seat_io::{AgentChange, CallContext, SeatIo, StoreIo};
use crate::store::CallMeta;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

const TICK: Duration = Duration::from_millis(10);
/// At shutdown, how long to wait for the indexer to open and close the calls still held; after
/// that the worker exits and the next start's recovery seals them.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(60);

pub fn run(
    mut seats: Vec<Seat>,
    ctx: Arc<CallContext>,
    rx: Receiver<Routed>,
    stop: Arc<AtomicBool>,
    heartbeat: Arc<AtomicU64>,
) {
    let mut io = StoreIo::new(&ctx);
    loop {
        let t0 = Instant::now();
        io.poll();
        while let Ok((req, reply)) = rx.try_recv() {
            execute(&mut seats, &mut io, req, reply);
        }
        for seat in &mut seats {
            seat.tick(&mut io);
        }
        io.flush();
        heartbeat.fetch_add(1, Ordering::Relaxed);
        if stop.load(Ordering::Relaxed) {
            for seat in &mut seats {
                seat.tick(&mut io); // take what is already in the rings
                seat.shutdown(&mut io);
            }
            io.flush();
            // Shutting down, the rings no longer matter: wait for the calls still opening or
            // writing their backlog to be handed to the indexer.
            let since = Instant::now();
            while !io.is_idle() && since.elapsed() < SHUTDOWN_WAIT {
                std::thread::sleep(TICK);
                io.poll();
                for seat in &mut seats {
                    seat.shutdown(&mut io); // a call whose start failed meanwhile is let go
                }
                io.flush();
            }
            if !io.is_idle() {
                tracing::error!("the index did not answer within {SHUTDOWN_WAIT:?}: calls still open are sealed at the next start");
            }
            return;
        }
        if let Some(rest) = TICK.checked_sub(t0.elapsed()) {
            std::thread::sleep(rest);
        }
    }
}

/// Carries out one control request. What succeeds on the seat is answered once the index has
/// it (`reply_when_done`); what the seat refuses is answered at once.
fn execute(seats: &mut [Seat], io: &mut dyn SeatIo, req: Request, reply: Reply) {
    let name = req.seat().unwrap_or_default().to_owned();
    let Some(seat) = seats.iter_mut().find(|s| s.cfg.id == name) else {
        let _ = reply.send(Response::refused(format!(
            "no seat {name:?} on this worker"
        )));
        return;
    };
    let result: Result<CallToken, _> = match req {
        Request::Start { meta, tags, .. } => {
            let started = seat.start(io, meta.clone());
            // Every announced call is counted, recorded or not (record::completeness).
            io.announced(
                &name,
                started.as_ref().copied().map_err(ToString::to_string),
            );
            started.and_then(|id| {
                if tags.is_empty() {
                    Ok(id)
                } else {
                    seat.tag(io, &tags, &meta)
                }
            })
        }
        Request::Stop {
            meta,
            outcome,
            amount,
            by,
            ..
        } => {
            let ready = if meta == CallMeta::default() {
                Ok(())
            } else {
                seat.tag(io, &[], &meta).map(|_| ())
            };
            ready
                .and_then(|()| match outcome {
                    Some(code) => seat
                        .set_outcome(
                            io,
                            StopOutcome {
                                code,
                                amount,
                                by: by.unwrap_or_else(|| format!("control:{name}")),
                            },
                        )
                        .map(|_| ()),
                    None => Ok(()),
                })
                .and_then(|()| seat.stop(io, "stop"))
        }
        Request::Pause { by, reason, .. } => seat.pause(io, by.as_deref(), reason.as_deref()),
        Request::Resume { .. } => seat.resume(io),
        Request::Tag { tags, meta, .. } => seat.tag(io, &tags, &meta),
        Request::Hold { by, reason, .. } => seat.hold(io, by.as_deref(), reason.as_deref()),
        Request::Unhold { .. } => seat.unhold(io),
        Request::Login { agent, by, .. } => {
            seat.set_agent(Some(agent.clone()));
            let change = agent_change(seat, AgentState::Login, Some(agent), by);
            io.agent_state(&name, change, reply);
            return;
        }
        Request::Logout { by, .. } => {
            seat.set_agent(None);
            let change = agent_change(seat, AgentState::Logout, None, by);
            io.agent_state(&name, change, reply);
            return;
        }
        Request::Wrapup { by, .. } => {
            match seat.check_not_recording(io) {
                Ok(()) => {
                    let change = agent_change(seat, AgentState::Wrapup, None, by);
                    io.agent_state(&name, change, reply);
                }
                Err(e) => {
                    let _ = reply.send(Response::refused(e));
                }
            }
            return;
        }
        Request::Ready { by, .. } => {
            let change = agent_change(seat, AgentState::Ready, None, by);
            io.agent_state(&name, change, reply);
            return;
        }
        Request::Status | Request::Listen { .. } => {
            let _ = reply.send(Response::refused(
                "status and listen are answered by the control thread",
            ));
            return;
        }
    };
    match result {
        Ok(token) => io.reply_when_done(token, reply),
        Err(e) => {
            let _ = reply.send(Response::refused(e));
        }
    }
}

/// An agent state for the indexer (`by` defaults to `control:<seat>`, as for outcomes).
fn agent_change(
    seat: &Seat,
    state: AgentState,
    agent: Option<String>,
    by: Option<String>,
) -> AgentChange {
    AgentChange {
        state,
        agent,
        by: by.unwrap_or_else(|| format!("control:{}", seat.cfg.id)),
        current_call: seat.current_call(),
    }
}
