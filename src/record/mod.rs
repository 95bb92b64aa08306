//! The recording daemon (`callrec record`): recovery, inputs, workers, fsync thread, control
//! socket, systemd notification and signal handling, wired together.
//!
//! Start-up order matters: the disk guard looks at free space first (releasing its reserve if
//! the disk is full, so recovery can write the index), crash recovery runs before any new call
//! can start, so a `recording` row always belongs to this process, and deletions a crash left
//! half done are completed. First SIGTERM/SIGINT finishes every open call cleanly; a second one
//! exits immediately (the next start recovers whatever was open). This module must never start
//! a seat before recovery has run.

pub mod call;
pub mod completeness;
pub mod control;
pub mod disk_guard;
pub mod indexer;
pub mod lag_window;
pub mod live;
pub mod seat;
pub mod seat_error;
pub mod seat_io;
pub mod syncer;
pub mod worker;

use crate::capture::device::Supervisor;
use crate::capture::ring::{InputShared, Tap};
use crate::capture::sim::Simulator;
use crate::config::{Config, DeviceConfig, InputKind, Party};
use crate::dsp::align::Aligner;
use crate::store;
use anyhow::Context;
use seat::{Seat, SeatInput};
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// Tells systemd about readiness and liveness (sd_notify protocol), if run under it.
fn sd_notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else {
        return;
    };
    let _ = sock.send_to(state.as_bytes(), path);
}

/// Seat inputs fed by each `[[device]]`, by device name: gathered over all seats, so each
/// device is opened once however many seats it feeds.
type DeviceTaps = HashMap<String, Vec<Tap>>;

fn build_seat(
    cfg: &Config,
    seat_cfg: &crate::config::SeatConfig,
    sim: &mut Simulator,
    sup: &mut Supervisor,
    device_taps: &mut DeviceTaps,
) -> anyhow::Result<Seat> {
    let mut inputs = Vec::new();
    let mut rates = [0u32; 2];
    for (j, inp) in seat_cfg.inputs.iter().enumerate() {
        let shared = Arc::new(InputShared::default());
        let label = format!("{}.input[{j}]", seat_cfg.id);
        let parties = inp.party_channels();
        for (p, _) in &parties {
            rates[p.index()] = inp.rate_hz;
        }
        match inp.kind {
            // A device of its own: opened for this seat input alone, as it always was.
            InputKind::Device => {
                let dev = DeviceConfig {
                    name: label.clone(),
                    pcm: inp.device.clone().unwrap_or_default(),
                    channels: inp.channels,
                    rate_hz: inp.rate_hz,
                    buffer_frames: inp.buffer_frames,
                };
                let map = parties.iter().map(|(_, c)| usize::from(*c)).collect();
                sup.add(
                    label.clone(),
                    dev,
                    vec![Tap {
                        shared: shared.clone(),
                        map,
                    }],
                )
            }
            InputKind::File | InputKind::Synthetic => sim
                .add(inp, &shared)
                .with_context(|| format!("seat {}", seat_cfg.id))?,
        }
        inputs.push(SeatInput::new(label, shared, &parties, inp.rate_hz));
    }
    // Channels of shared devices: one input (and ring) per device the seat uses, labelled with
    // the device's name, so a fault shows as "desk-16 down" on every seat it feeds.
    let mapped = seat_cfg.device_parties();
    let mut seat_devices: Vec<&str> = mapped.iter().map(|(_, d, _)| *d).collect();
    seat_devices.dedup();
    for name in &seat_devices {
        let dev = cfg
            .devices
            .iter()
            .find(|d| d.name == *name)
            .with_context(|| format!("seat {}: no [[device]] {name:?}", seat_cfg.id))?;
        let parties: Vec<(Party, u16)> = mapped
            .iter()
            .filter(|(_, d, _)| d == name)
            .map(|(p, _, c)| (*p, *c))
            .collect();
        for (p, _) in &parties {
            rates[p.index()] = dev.rate_hz;
        }
        let shared = Arc::new(InputShared::default());
        device_taps.entry(dev.name.clone()).or_default().push(Tap {
            shared: shared.clone(),
            map: parties.iter().map(|(_, c)| usize::from(*c)).collect(),
        });
        inputs.push(SeatInput::new(
            dev.name.clone(),
            shared,
            &parties,
            dev.rate_hz,
        ));
    }
    let two_clocks = inputs.len() == 2;
    let aligner = Aligner::new(
        rates[Party::Agent.index()],
        rates[Party::Customer.index()],
        cfg.encoder.rate_hz,
        cfg.encoder.frame_samples(),
        two_clocks,
    )
    .with_context(|| format!("seat {}", seat_cfg.id))?;
    Ok(Seat::new(
        seat_cfg.clone(),
        inputs,
        aligner,
        cfg.encoder.frame_ms,
    ))
}

/// Holds an exclusive lock on the storage dir for the life of the recorder: one writer only.
/// Without it a second recorder would "recover" the first one's open calls.
fn lock_storage(dir: &std::path::Path) -> anyhow::Result<std::fs::File> {
    let path = dir.join("recorder.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    use rustix::fs::{flock, FlockOperation};
    match flock(&f, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(f),
        Err(rustix::io::Errno::WOULDBLOCK) => anyhow::bail!(
            "another `callrec record` is already using {}; stop it first (systemctl stop callrec)",
            dir.display()
        ),
        Err(e) => {
            Err(std::io::Error::from(e)).with_context(|| format!("locking {}", path.display()))
        }
    }
}

/// Runs the recorder until `term` is set (by SIGTERM/SIGINT: `daemon::stop_on_signals`).
pub fn run(
    cfg: Config,
    term: Arc<AtomicBool>,
    clock: Arc<dyn crate::clock::Clock>,
) -> anyhow::Result<()> {
    let dir = &cfg.storage.dir;
    let (_lock, conn) = open_storage(&cfg)?;
    let (guard, guard_handle) = disk_guard::Guard::new(&cfg, clock.clone())?;
    recover(&conn, dir, &*clock)?;
    let guard_thread = std::thread::Builder::new()
        .name("disk-guard".into())
        .spawn(move || guard.run())?;

    // Inputs that leave their rate out are captured at the encoder's rate where they can be.
    let (seats, sim, sup) = build_seats(&crate::capture::rate::resolve(&cfg))?;

    // The indexer owns the recorder's index connection: no worker ever waits for it.
    let (index_tx, index_rx) = mpsc::channel();
    let storage = call::Storage::new(
        cfg.box_.id.clone(),
        dir.clone(),
        cfg.encoder.clone(),
        guard_handle.clone(),
    );
    let rules = completeness::Rules::new(&cfg);
    let indexer = std::thread::Builder::new()
        .name("indexer".into())
        .spawn(move || indexer::Indexer::new(conn, storage, rules).run(index_rx))?;
    // The idle alarm is judged on the indexer, every IDLE_CHECK, until the signal to stop.
    let idle_index = index_tx.clone();
    let (sync_tx, sync_rx) = mpsc::channel();
    let sync_index = index_tx.clone();
    let syncer = std::thread::Builder::new()
        .name("fsync".into())
        .spawn(move || {
            syncer::run(sync_rx, |batch| {
                sync_index.send(indexer::Job::Progress(batch)).is_ok()
            })
        })?;
    let ctx = Arc::new(seat_io::CallContext::new(
        dir.clone(),
        cfg.encoder.clone(),
        Duration::from_millis(cfg.storage.fsync_interval_ms),
        sync_tx,
        index_tx,
        guard_handle.clone(),
        clock,
    ));

    let stop = Arc::new(AtomicBool::new(false));
    let threads = start_inputs(sim, sup, &stop)?;
    let (workers, router) = Workers::start(cfg.worker_count(), seats, &ctx)?;
    let sock_path = cfg.control_socket();
    let listener = bind_control_socket(&sock_path)?;
    let control_stop = Arc::new(AtomicBool::new(false));
    let cs = control_stop.clone();
    let control = std::thread::Builder::new()
        .name("control".into())
        .spawn(move || control::serve(listener, router, cs))?;

    tracing::info!(seats = cfg.seats.len(), workers = workers.handles.len(), storage = %dir.display(), socket = %sock_path.display(), "recorder running");
    sd_notify("READY=1");
    let idle_clock = ctx.clock.clone();
    wait_for_signal(&term, &workers.heartbeats, || {
        let _ = idle_index.send(indexer::Job::CheckIdle {
            now: idle_clock.now_utc(),
        });
    });
    // The indexer ends once every sender is gone.
    drop(idle_index);

    tracing::info!("stopping: finishing open calls");
    sd_notify("STOPPING=1");
    control_stop.store(true, Ordering::Relaxed);
    let _ = control.join();
    workers.stop_and_join();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    // The syncer ends with the workers' queue to it, then the indexer with the last queue to
    // it (the syncer's), after the jobs already queued: every finished call is completed.
    drop(ctx);
    let _ = syncer.join();
    let _ = indexer.join();
    // Last: calls the workers stopped on an error are sealed before the guard exits.
    guard_handle.stop();
    let _ = guard_thread.join();
    let _ = std::fs::remove_file(&sock_path);
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Every configured seat, its inputs added to the simulator or the device supervisor.
fn build_seats(cfg: &Config) -> anyhow::Result<(Vec<Seat>, Simulator, Supervisor)> {
    let mut sim = Simulator::new();
    let mut sup = Supervisor::new();
    let mut seats = Vec::new();
    let mut device_taps = DeviceTaps::new();
    for s in &cfg.seats {
        seats.push(build_seat(cfg, s, &mut sim, &mut sup, &mut device_taps)?);
    }
    // Each `[[device]]` a seat uses is opened once; one no seat uses is not opened at all.
    for dev in &cfg.devices {
        if let Some(taps) = device_taps.remove(&dev.name) {
            tracing::info!(device = %dev.name, pcm = %dev.pcm, seats = taps.len(), "shared capture device");
            sup.add(dev.name.clone(), dev.clone(), taps);
        }
    }
    Ok((seats, sim, sup))
}

/// Checks the storage identity, takes the recorder lock and opens the index. Returns the lock
/// (held until the recorder exits) and the index.
fn open_storage(cfg: &Config) -> anyhow::Result<(std::fs::File, rusqlite::Connection)> {
    let dir = &cfg.storage.dir;
    store::identity::precheck(dir, cfg.storage.id.as_deref())?;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating storage dir {}", dir.display()))?;
    let lock = lock_storage(dir)?;
    let conn = store::open_rw(&cfg.db_path())?;
    let (storage_id, created) = store::identity::ensure(dir, &conn, cfg.storage.id.as_deref())?;
    // The indexer checks outcomes sent at stop against these lists, with or without the web
    // service ever having run.
    let lists = store::outcomes::seed_defaults(&conn)?;
    if !lists.is_empty() {
        tracing::info!(campaigns = ?lists, "installed the default outcome lists");
    }
    if created {
        tracing::info!(
            storage_id,
            "new storage: identity written to {}; put `id = \"{storage_id}\"` under [storage] in the config so an unmounted disk is refused",
            dir.join(store::identity::FILE).display()
        );
    }
    Ok((lock, conn))
}

/// Seals the calls the previous run left open, and finishes its interrupted deletions.
fn recover(
    conn: &rusqlite::Connection,
    dir: &std::path::Path,
    clock: &dyn crate::clock::Clock,
) -> anyhow::Result<()> {
    let recovered = store::recovery::recover_all(conn, dir)?;
    if !recovered.is_empty() {
        tracing::warn!(
            "recovered {} call(s) interrupted by the previous run",
            recovered.len()
        );
    }
    // Their talk and hold, as a call that ended cleanly has them.
    for r in &recovered {
        if let Err(e) = store::agent_states::settle_call(conn, r.call_id) {
            tracing::warn!(call_id = r.call_id, "storing the call's talk and hold: {e}");
        }
    }
    // The seats start with no agent logged in: so does the index (logged-in time must not run
    // on through a restart).
    let seats = store::agent_states::end_all_at_start(conn, &clock.utc_string())?;
    if !seats.is_empty() {
        tracing::info!(seats = ?seats, "seats logged out by the restart; the CTI logs them in again");
    }
    // A crash between the two steps of a deletion left `garbage` rows: finish them now. A
    // failure is not fatal (the guard retries every tick).
    match store::lifecycle::finish_garbage(conn, dir, &clock.utc_string()) {
        Ok(0) => {}
        Ok(n) => tracing::info!(calls = n, "completed deletions left by the previous run"),
        Err(e) => tracing::error!("completing deletions left by the previous run: {e}"),
    }
    Ok(())
}

/// The threads that feed the seats' inputs: devices (waited for, up to 10 s, until they have
/// been opened once) and simulated inputs. They run until `stop` is set.
fn start_inputs(
    sim: Simulator,
    sup: Supervisor,
    stop: &Arc<AtomicBool>,
) -> anyhow::Result<Vec<std::thread::JoinHandle<()>>> {
    let mut threads = Vec::new();
    if !sup.is_empty() {
        let (ready_tx, ready_rx) = mpsc::channel();
        let st = stop.clone();
        threads.push(
            std::thread::Builder::new()
                .name("devices".into())
                .spawn(move || sup.run(st, ready_tx))?,
        );
        let _ = ready_rx.recv_timeout(Duration::from_secs(10));
    }
    if !sim.is_empty() {
        let st = stop.clone();
        threads.push(
            std::thread::Builder::new()
                .name("simulated-inputs".into())
                .spawn(move || sim.run(st))?,
        );
    }
    Ok(threads)
}

/// The fixed pool of worker threads that run the seats.
struct Workers {
    handles: Vec<std::thread::JoinHandle<()>>,
    /// One per worker, advanced on every pass of its loop.
    heartbeats: Vec<Arc<AtomicU64>>,
    stop: Arc<AtomicBool>,
}

impl Workers {
    /// Deals the seats to at most `count` workers and starts them; returns them and the router
    /// that sends each seat's commands to its worker.
    fn start(
        count: usize,
        seats: Vec<Seat>,
        ctx: &Arc<seat_io::CallContext>,
    ) -> anyhow::Result<(Workers, control::Router)> {
        let n_workers = count.min(seats.len()).max(1);
        let mut per_worker: Vec<Vec<Seat>> = (0..n_workers).map(|_| Vec::new()).collect();
        let mut routes = HashMap::new();
        let mut status = Vec::new();
        let mut live = HashMap::new();
        let mut senders = Vec::new();
        let mut receivers = Vec::new();
        for _ in 0..n_workers {
            let (tx, rx) = mpsc::channel();
            senders.push(tx);
            receivers.push(rx);
        }
        for (i, seat) in seats.into_iter().enumerate() {
            routes.insert(seat.cfg.id.clone(), senders[i % n_workers].clone());
            status.push(seat.status.clone());
            live.insert(seat.cfg.id.clone(), seat.live_tap.clone());
            per_worker[i % n_workers].push(seat);
        }
        drop(senders);
        let stop = Arc::new(AtomicBool::new(false));
        let mut handles = Vec::new();
        let mut heartbeats = Vec::new();
        for (i, (seats, rx)) in per_worker.into_iter().zip(receivers).enumerate() {
            let (c, st, hb) = (ctx.clone(), stop.clone(), Arc::new(AtomicU64::new(0)));
            heartbeats.push(hb.clone());
            handles.push(
                std::thread::Builder::new()
                    .name(format!("worker-{i}"))
                    .spawn(move || worker::run(seats, c, rx, st, hb))?,
            );
        }
        let router = control::Router {
            workers: routes,
            status,
            live,
            rate_hz: ctx.encoder.rate_hz,
            frame_samples: ctx.encoder.frame_samples(),
            live_total: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
        };
        Ok((
            Workers {
                handles,
                heartbeats,
                stop,
            },
            router,
        ))
    }

    /// Stops the workers (each finishes its open calls) and waits for them.
    fn stop_and_join(self) {
        self.stop.store(true, Ordering::Relaxed);
        for w in self.handles {
            let _ = w.join();
        }
    }
}

/// The control socket, replacing one a previous run left, group-writable.
fn bind_control_socket(
    sock_path: &std::path::Path,
) -> anyhow::Result<std::os::unix::net::UnixListener> {
    let _ = std::fs::remove_file(sock_path);
    if let Some(parent) = sock_path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let listener = std::os::unix::net::UnixListener::bind(sock_path)
        .with_context(|| format!("binding control socket {}", sock_path.display()))?;
    std::fs::set_permissions(sock_path, std::fs::Permissions::from_mode(0o660))?;
    Ok(listener)
}

/// Waits for SIGTERM/SIGINT, telling systemd's watchdog every 2 s that the recorder is alive,
/// and calling `check_idle` every [`completeness::IDLE_CHECK`].
fn wait_for_signal(term: &AtomicBool, heartbeats: &[Arc<AtomicU64>], mut check_idle: impl FnMut()) {
    let mut last_beats: Vec<u64> = vec![0; heartbeats.len()];
    let mut last_watchdog = Instant::now();
    let mut last_idle_check = Instant::now();
    while !term.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        if last_idle_check.elapsed() >= completeness::IDLE_CHECK {
            check_idle();
            last_idle_check = Instant::now();
        }
        if last_watchdog.elapsed() >= Duration::from_secs(2) {
            // Only tell the watchdog we are alive if every worker made progress.
            let beats: Vec<u64> = heartbeats
                .iter()
                .map(|h| h.load(Ordering::Relaxed))
                .collect();
            if beats
                .iter()
                .zip(&last_beats)
                .all(|(now, before)| now > before)
            {
                sd_notify("WATCHDOG=1");
            }
            last_beats = beats;
            last_watchdog = Instant::now();
        }
    }
}
