// live.js — the live page (/live/{seat}): plays the seat's frames from /api/live/{seat}/audio
// through Web Audio with a small jitter buffer, agent and customer on separate lanes with
// mute/solo, and a scrolling two-lane waveform of what is being played.
// The stream is the recorder's record::live format (docs/integration.md): per frame a 16-byte
// header (u32 sequence, u16 flags, u16 samples per channel, i64 call) and s16le agent/customer
// pairs. Mute/solo is common.js's (window.callrec: laneAudible, setLanes), which the page loads
// first. Plain ES2020 in one function scope: no build step, nothing from other origins.
(() => {
  'use strict';

  const root = document.getElementById('live');
  const canvas = document.getElementById('live-wave');
  if (!root || !canvas) return;
  const $ = (id) => document.getElementById(id);
  const { laneAudible, setLanes } = window.callrec;

  const seat = root.dataset.seat || '';
  const LANES = ['agent', 'customer'];
  const HEADER_BYTES = 16;
  const FLAG_PAUSED = 1;
  // Audio waits this long after it arrives before it plays: enough to ride out network and
  // timer jitter on a LAN, small enough to stay well inside the 2 s the floor asks for.
  const JITTER_S = 0.3;
  // Further behind than this (a stalled tab), frames are skipped to catch up.
  const MAX_AHEAD_S = 1.0;
  // A played sample louder than this counts as sound (for the tests' tone burst: -20 dBFS).
  const LOUD = 0.1;

  const ui = {
    listen: $('listen'),
    state: $('live-state'),
    mute: { agent: $('mute-agent'), customer: $('mute-customer') },
    solo: { agent: $('solo-agent'), customer: $('solo-customer') },
  };

  let ctx = null;
  let abort = null;
  let nextTime = 0;
  const gains = { agent: null, customer: null };
  let mixAnalyser = null;
  const muted = { agent: false, customer: false };
  let solo = null;
  // Peaks waiting for their playout time, then drawn (newest right).
  const pending = [];
  const history = [];

  // What the page did, for tests and for anyone debugging a floor: read-only figures.
  const state = {
    listening: false,
    frames: 0,
    missedFrames: 0,
    pausedFrames: 0,
    underruns: 0,
    skipped: 0,
    call: 0,
    paused: false,
    drawnColumns: 0,
    // Wall-clock ms (Date.now()) at which the first loud sample after arm() was scheduled to
    // reach the output (its start time in the context plus the output latency) ...
    loudScheduledAt: null,
    // ... and at which the mix analyser saw it being played (plus the output latency).
    loudHeardAt: null,
    contextState: () => (ctx ? ctx.state : 'none'),
    contextTime: () => (ctx ? ctx.currentTime : 0),
    outputLatencyMs: () => outputLatencyS() * 1000,
    gain: (lane) => (gains[lane] ? gains[lane].gain.value : null),
    arm: () => {
      state.loudScheduledAt = null;
      state.loudHeardAt = null;
    },
  };
  window.callrecLive = state;

  function outputLatencyS() {
    if (!ctx) return 0;
    return (ctx.outputLatency || 0) || (ctx.baseLatency || 0);
  }

  function audible(lane) {
    return laneAudible(lane, muted, solo);
  }

  function applyLanes() {
    setLanes(ui, gains, muted, solo);
  }

  for (const lane of LANES) {
    if (ui.mute[lane]) {
      ui.mute[lane].addEventListener('click', () => {
        muted[lane] = !muted[lane];
        if (muted[lane] && solo === lane) solo = null;
        applyLanes();
      });
    }
    if (ui.solo[lane]) {
      ui.solo[lane].addEventListener('click', () => {
        solo = solo === lane ? null : lane;
        if (solo === lane) muted[lane] = false;
        applyLanes();
      });
    }
  }

  function setState(text) {
    if (ui.state) ui.state.textContent = text;
  }

  // The graph: each frame's buffer -> splitter -> one gain per party -> mix -> output, with an
  // analyser on the mix (what is actually played).
  function buildGraph(rate) {
    ctx = new AudioContext({ latencyHint: 'interactive' });
    const mix = ctx.createGain();
    mix.connect(ctx.destination);
    mixAnalyser = ctx.createAnalyser();
    mixAnalyser.fftSize = 512;
    mix.connect(mixAnalyser);
    const splitter = ctx.createChannelSplitter(2);
    LANES.forEach((lane, i) => {
      const g = ctx.createGain();
      splitter.connect(g, i);
      g.connect(mix);
      gains[lane] = g;
    });
    applyLanes();
    return { splitter, rate };
  }

  function scheduleFrame(graph, view, offset, n, flags) {
    const buf = ctx.createBuffer(2, n, graph.rate);
    const a = buf.getChannelData(0);
    const c = buf.getChannelData(1);
    let peakA = 0;
    let peakC = 0;
    let loudAt = -1;
    for (let i = 0; i < n; i++) {
      const va = view.getInt16(offset + i * 4, true) / 32768;
      const vc = view.getInt16(offset + i * 4 + 2, true) / 32768;
      a[i] = va;
      c[i] = vc;
      const pa = Math.abs(va);
      const pc = Math.abs(vc);
      if (pa > peakA) peakA = pa;
      if (pc > peakC) peakC = pc;
      if (loudAt < 0 && ((audible('agent') && pa > LOUD) || (audible('customer') && pc > LOUD))) {
        loudAt = i;
      }
    }
    const now = ctx.currentTime;
    if (nextTime < now + 0.02) {
      // Ran dry (start, or the network hiccuped): rebuild the cushion.
      if (state.frames > 0) state.underruns++;
      nextTime = now + JITTER_S;
    } else if (nextTime > now + MAX_AHEAD_S) {
      state.skipped++;
      return;
    }
    const src = ctx.createBufferSource();
    src.buffer = buf;
    src.connect(graph.splitter);
    src.start(nextTime);
    if (loudAt >= 0 && state.loudScheduledAt === null) {
      const playIn = nextTime + loudAt / graph.rate - now + outputLatencyS();
      state.loudScheduledAt = Date.now() + playIn * 1000;
    }
    pending.push({ t: nextTime, a: peakA, c: peakC, paused: (flags & FLAG_PAUSED) !== 0 });
    nextTime += n / graph.rate;
  }

  // Moves peaks whose time has come to the history and redraws; watches the mix for sound.
  function tick() {
    if (!ctx) return;
    const now = ctx.currentTime;
    let moved = false;
    while (pending.length && pending[0].t <= now) {
      history.push(pending.shift());
      moved = true;
    }
    const width = canvas.width || 600;
    while (history.length > width) history.shift();
    if (moved) draw();
    if (mixAnalyser && state.loudHeardAt === null) {
      const data = new Float32Array(mixAnalyser.fftSize);
      mixAnalyser.getFloatTimeDomainData(data);
      let peak = 0;
      for (const v of data) if (Math.abs(v) > peak) peak = Math.abs(v);
      if (peak > LOUD) state.loudHeardAt = Date.now() + outputLatencyS() * 1000;
    }
  }

  function draw() {
    const g = canvas.getContext('2d');
    if (!g) return;
    if (canvas.width !== canvas.clientWidth && canvas.clientWidth > 0) canvas.width = canvas.clientWidth;
    const w = canvas.width;
    const h = canvas.height;
    const lane = h / 2;
    g.clearRect(0, 0, w, h);
    const x0 = w - history.length;
    history.forEach((p, i) => {
      const x = x0 + i;
      g.fillStyle = p.paused ? '#999' : '#2b6cb0';
      const ha = Math.max(1, p.a * (lane - 4));
      g.fillRect(x, lane / 2 - ha / 2, 1, ha);
      g.fillStyle = p.paused ? '#999' : '#c05621';
      const hc = Math.max(1, p.c * (lane - 4));
      g.fillRect(x, lane + lane / 2 - hc / 2, 1, hc);
    });
    state.drawnColumns = history.length;
  }

  async function start() {
    if (state.listening) return;
    state.listening = true;
    ui.listen.textContent = 'Stop';
    setState('connecting…');
    abort = new AbortController();
    let graph = null;
    let timer = null;
    try {
      const resp = await fetch(`/api/live/${encodeURIComponent(seat)}/audio`, {
        signal: abort.signal,
        credentials: 'same-origin',
        cache: 'no-store',
      });
      if (!resp.ok) {
        const why = await resp.text();
        throw new Error(`${resp.status}: ${why}`);
      }
      const rate = Number(resp.headers.get('x-live-rate-hz')) || 16000;
      const frameBytes = Number(resp.headers.get('x-live-frame-bytes')) || 0;
      graph = buildGraph(rate);
      await ctx.resume();
      nextTime = 0;
      timer = setInterval(tick, 20);
      const reader = resp.body.getReader();
      let carry = new Uint8Array(0);
      let lastSeq = null;
      setState('listening');
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const bytes = new Uint8Array(carry.length + value.length);
        bytes.set(carry, 0);
        bytes.set(value, carry.length);
        const view = new DataView(bytes.buffer);
        let off = 0;
        while (bytes.length - off >= HEADER_BYTES) {
          const n = view.getUint16(off + 6, true);
          const size = frameBytes || HEADER_BYTES + n * 4;
          if (bytes.length - off < size) break;
          const seq = view.getUint32(off, true);
          const flags = view.getUint16(off + 4, true);
          if (lastSeq !== null) state.missedFrames += Math.max(0, ((seq - lastSeq) >>> 0) - 1);
          lastSeq = seq;
          state.call = Number(view.getBigInt64(off + 8, true));
          state.paused = (flags & FLAG_PAUSED) !== 0;
          if (state.paused) state.pausedFrames++;
          scheduleFrame(graph, view, off + HEADER_BYTES, n, flags);
          state.frames++;
          off += size;
        }
        carry = bytes.slice(off);
        setState(
          `listening${state.call ? ` · call ${state.call}` : ' · no call'}${state.paused ? ' · paused (PCI): silence' : ''}`,
        );
      }
      setState('the stream ended (time limit, or the recorder stopped)');
    } catch (e) {
      if (!abort || !abort.signal.aborted) setState(`cannot listen: ${e.message}`);
    } finally {
      if (timer) clearInterval(timer);
      stop(false);
    }
  }

  function stop(user) {
    state.listening = false;
    if (abort) abort.abort();
    abort = null;
    if (ctx) ctx.close();
    ctx = null;
    mixAnalyser = null;
    for (const lane of LANES) gains[lane] = null;
    pending.length = 0;
    ui.listen.textContent = 'Listen';
    if (user) setState('not listening');
  }

  ui.listen.addEventListener('click', () => {
    if (state.listening) stop(true);
    else start();
  });
})();
