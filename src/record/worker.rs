//! A fixed pool of worker threads (not a thread per seat). Each owns a set of seats and, every
//! 10 ms, drains their rings, resamples, encodes and writes; it also executes control requests
//! for its seats between passes, so a seat is only ever touched by one thread. The worker's
//! `StoreIo` holds the open call files of its seats.

use super::call::CallContext;
use super::control::{Request, Response, Routed};
use super::seat::Seat;
use super::seat_io::{SeatIo, StoreIo};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

const TICK: Duration = Duration::from_millis(10);

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
        while let Ok((req, reply)) = rx.try_recv() {
            let _ = reply.send(execute(&mut seats, &mut io, req));
        }
        for seat in &mut seats {
            seat.tick(&mut io);
        }
        heartbeat.fetch_add(1, Ordering::Relaxed);
        if stop.load(Ordering::Relaxed) {
            for seat in &mut seats {
                seat.tick(&mut io); // take what is already in the rings
                seat.shutdown(&mut io);
            }
            return;
        }
        if let Some(rest) = TICK.checked_sub(t0.elapsed()) {
            std::thread::sleep(rest);
        }
    }
}

fn execute(seats: &mut [Seat], io: &mut dyn SeatIo, req: Request) -> Response {
    let name = req.seat().unwrap_or_default().to_owned();
    let Some(seat) = seats.iter_mut().find(|s| s.cfg.id == name) else {
        return Response::refused(format!("no seat {name:?} on this worker"));
    };
    Response::from_result(match req {
        Request::Start { meta, tags, .. } => seat.start(io, meta.clone()).and_then(|id| {
            if tags.is_empty() {
                Ok(id)
            } else {
                seat.tag(io, &tags, &meta)
            }
        }),
        Request::Stop { .. } => seat.stop(io, "stop"),
        Request::Pause { by, reason, .. } => seat.pause(io, by.as_deref(), reason.as_deref()),
        Request::Resume { .. } => seat.resume(io),
        Request::Tag { tags, meta, .. } => seat.tag(io, &tags, &meta),
        Request::Login { agent, .. } => {
            seat.set_agent(Some(agent));
            return Response {
                ok: true,
                call_id: seat.current_call_id(),
                ..Default::default()
            };
        }
        Request::Logout { .. } => {
            seat.set_agent(None);
            return Response {
                ok: true,
                call_id: seat.current_call_id(),
                ..Default::default()
            };
        }
        Request::Status => return Response::refused("status is answered by the control thread"),
    })
}
