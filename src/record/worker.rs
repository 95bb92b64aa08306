//! A fixed pool of worker threads (not a thread per seat). Each owns a set of seats and, every
//! 10 ms, drains their rings, resamples, encodes and writes; it also executes control requests
//! for its seats between passes, so a seat is only ever touched by one thread.

use super::call::CallContext;
use super::control::{Request, Response, Routed};
use super::seat::Seat;
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
    loop {
        let t0 = Instant::now();
        while let Ok((req, reply)) = rx.try_recv() {
            let _ = reply.send(execute(&mut seats, &ctx, req));
        }
        for seat in &mut seats {
            seat.tick(&ctx);
        }
        heartbeat.fetch_add(1, Ordering::Relaxed);
        if stop.load(Ordering::Relaxed) {
            for seat in &mut seats {
                seat.tick(&ctx); // take what is already in the rings
                seat.shutdown(&ctx);
            }
            return;
        }
        if let Some(rest) = TICK.checked_sub(t0.elapsed()) {
            std::thread::sleep(rest);
        }
    }
}

fn execute(seats: &mut [Seat], ctx: &CallContext, req: Request) -> Response {
    let name = req.seat().unwrap_or_default().to_owned();
    let Some(seat) = seats.iter_mut().find(|s| s.cfg.id == name) else {
        return Response::from_result(Err(format!("no seat {name:?} on this worker")));
    };
    Response::from_result(match req {
        Request::Start { meta, tags, .. } => match validate_direction(&meta.direction) {
            Err(e) => Err(e),
            Ok(()) => seat.start(ctx, meta.clone()).and_then(|id| {
                if tags.is_empty() {
                    Ok(id)
                } else {
                    seat.tag(ctx, &tags, &meta)
                }
            }),
        },
        Request::Stop { .. } => seat.stop(ctx, "stop"),
        Request::Pause { by, reason, .. } => seat.pause(ctx, by.as_deref(), reason.as_deref()),
        Request::Resume { .. } => seat.resume(ctx),
        Request::Tag { tags, meta, .. } => {
            validate_direction(&meta.direction).and_then(|()| seat.tag(ctx, &tags, &meta))
        }
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
        Request::Status => Err("status is answered by the control thread".into()),
    })
}

fn validate_direction(d: &Option<String>) -> Result<(), String> {
    match d.as_deref() {
        None | Some("inbound") | Some("outbound") => Ok(()),
        Some(other) => Err(format!(
            "direction {other:?} must be \"inbound\" or \"outbound\""
        )),
    }
}
