// player.js — the call page's player: two-party waveform from the peaks file, playback
// controls, per-party mute/solo through Web Audio, timestamp links, notes, and the audit of
// which stretches of the call the reviewer actually heard.
// Uses the shared helpers of common.js (window.callrec: fmtTime, HttpError, request, api,
// setLanes), which the page loads first. Plain ES2020 in one function scope: no build step, no
// modules, nothing from other origins.
(() => {
  'use strict';

  const root = document.getElementById('call');
  const audio = document.getElementById('audio');
  const canvas = document.getElementById('wave');
  // Only the call page has these; anywhere else a stray include must do nothing at all.
  if (!root || !audio || !canvas) return;

  const { metaContent, fmtTime, HttpError, request, api, setLanes } = window.callrec;
  const $ = (id) => document.getElementById(id);

  const callId = root.dataset.callId || '';
  const pageDurationMs = Number(root.dataset.durationMs) || 0;
  const csrfToken = metaContent('csrf-token');
  const currentUser = metaContent('user');
  const cid = encodeURIComponent(callId);
  const urls = {
    call: `/api/calls/${cid}`,
    peaks: `/api/calls/${cid}/peaks.dat`,
    notes: `/api/calls/${cid}/notes`,
    heard: `/api/calls/${cid}/heard`,
    // sendBeacon cannot set headers, so this one route takes the token in the query string.
    heardBeacon: `/api/calls/${cid}/heard?csrf=${encodeURIComponent(csrfToken)}`,
    note: (id) => `/api/notes/${encodeURIComponent(id)}`,
  };

  const ui = {
    player: $('player') || root,
    play: $('play'),
    back5: $('back5'),
    fwd5: $('fwd5'),
    speed: $('speed'),
    mute: { agent: $('mute-agent'), customer: $('mute-customer') },
    solo: { agent: $('solo-agent'), customer: $('solo-customer') },
    time: $('time'),
    share: $('share'),
    notes: $('notes'),
    noteList: $('note-list'),
    noteForm: $('note-form'),
    noteText: $('note-text'),
  };
  const LANES = ['agent', 'customer']; // index = channel in the file and in the peaks

  // ---------------------------------------------------------------------------------------
  // Small helpers

  const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
  const round1 = (s) => Math.round(s * 10) / 10;

  // Accepts "#t=83", "#t=83.5", "#t=1:23", "#t=1:02:03"; null for anything else.
  function parseHashTime(hash) {
    const m = /^#t=([0-9:.]+)$/.exec(hash || '');
    if (!m) return null;
    const parts = m[1].split(':');
    if (parts.length > 3) return null;
    let t = 0;
    for (let i = 0; i < parts.length; i++) {
      const last = i === parts.length - 1;
      if (!(last ? /^\d+(\.\d+)?$/ : /^\d+$/).test(parts[i])) return null;
      t = t * 60 + Number(parts[i]);
    }
    return t;
  }

  // One <p class="error"> per slot, created on first use, removed when cleared, so a fixed
  // problem does not leave a stale message behind.
  function messageSlot(parent, before) {
    let el = null;
    return (text) => {
      if (!text) {
        if (el) el.remove();
        el = null;
        return;
      }
      if (!el) {
        el = document.createElement('p');
        el.className = 'error';
        el.setAttribute('role', 'alert');
        parent.insertBefore(el, before && before.parentNode === parent ? before : null);
      }
      el.textContent = text;
    };
  }
  function showLoadErrors(messages) {
    for (const msg of messages) messageSlot(ui.player, canvas)(msg);
  }
  const showPlayMsg = messageSlot(ui.player, canvas);
  const showHeardMsg = messageSlot(ui.player, canvas);
  const showOutputMsg = messageSlot(ui.player, canvas);
  const showNoteMsg = ui.notes ? messageSlot(ui.notes, null) : showPlayMsg;

  // ---------------------------------------------------------------------------------------
  // State

  let peaks = null; // parsed peaks file, see parsePeaks
  let peaksState = 'loading'; // 'loading' | 'ok' | 'failed'
  let callDurationMs = 0;
  let intervals = []; // {kind, start, end|null} in seconds; null end = still open
  // Acoustic metric regions from the call's `metrics` (dsp::talk::Metrics), in seconds:
  // {kind: 'dead_air'|'overtalk', start, end, interrupter?: 'agent'|'customer'}.
  let regions = [];
  let notes = [];
  let pendingSeek = null; // target set before metadata was there; re-applied on loadedmetadata

  function duration() {
    const d = audio.duration;
    if (Number.isFinite(d) && d > 0) return d;
    if (pageDurationMs > 0) return pageDurationMs / 1000;
    if (callDurationMs > 0) return callDurationMs / 1000;
    if (peaks) return (peaks.length * peaks.samplesPerPixel) / peaks.sampleRate;
    return 0;
  }

  function position() {
    return pendingSeek !== null ? pendingSeek : audio.currentTime || 0;
  }

  function seek(seconds) {
    const t = Number(seconds);
    if (!Number.isFinite(t)) return;
    const d = duration();
    const target = d > 0 ? clamp(t, 0, d) : Math.max(0, t);
    // Before metadata the element only records a "default start position"; keep the target
    // ourselves too so it is re-applied (and clamped) once the real duration is known.
    pendingSeek = audio.readyState >= 1 ? null : target;
    try {
      audio.currentTime = target;
    } catch {
      pendingSeek = target;
    }
    requestRender();
  }

  const skip = (delta) => seek(position() + delta);

  // ---------------------------------------------------------------------------------------
  // Peaks file (audiowaveform .dat, version 2)

  function parsePeaks(buf) {
    if (buf.byteLength < 24) throw new HttpError(0, 'the peaks file is too short');
    const dv = new DataView(buf);
    const version = dv.getInt32(0, true);
    if (version !== 2) throw new HttpError(0, `unsupported peaks file version ${version}`);
    const eightBit = (dv.getUint32(4, true) & 1) === 1;
    const sampleRate = dv.getInt32(8, true);
    const samplesPerPixel = dv.getInt32(12, true);
    const declared = dv.getUint32(16, true);
    const channels = dv.getInt32(20, true);
    if (sampleRate <= 0 || samplesPerPixel <= 0 || channels < 1 || channels > 8) {
      throw new HttpError(0, 'the peaks file header is invalid');
    }
    const bytes = eightBit ? 1 : 2;
    const stride = channels * 2 * bytes;
    // A file still being written may be shorter than its header says: use what is there.
    const length = Math.min(declared, Math.floor((buf.byteLength - 24) / stride));
    const scale = eightBit ? 127 : 32767;
    const mins = [];
    const maxs = [];
    for (let c = 0; c < channels; c++) {
      mins.push(new Float32Array(length));
      maxs.push(new Float32Array(length));
    }
    let off = 24;
    for (let i = 0; i < length; i++) {
      for (let c = 0; c < channels; c++) {
        const lo = eightBit ? dv.getInt8(off) : dv.getInt16(off, true);
        const hi = eightBit ? dv.getInt8(off + bytes) : dv.getInt16(off + bytes, true);
        off += 2 * bytes;
        mins[c][i] = clamp(lo / scale, -1, 1);
        maxs[c][i] = clamp(hi / scale, -1, 1);
      }
    }
    return { sampleRate, samplesPerPixel, length, channels, bits: eightBit ? 8 : 16, mins, maxs };
  }

  // ---------------------------------------------------------------------------------------
  // Canvas drawing. A static layer (waveform, intervals, markers) is redrawn only when the
  // size or the data change; each frame just copies it and adds shading and the playhead.

  const COLORS = {
    bg: '#ffffff',
    laneBg: ['#f1f6fc', '#f1f8f3'],
    wave: ['#2563a8', '#2e7d4f'],
    axis: 'rgba(0, 0, 0, 0.12)',
    label: '#1d2430',
    pauseFill: 'rgba(110, 110, 110, 0.22)',
    pauseHatch: 'rgba(70, 70, 70, 0.45)',
    pauseText: '#333333',
    gapFill: 'rgba(214, 96, 20, 0.22)',
    gapEdge: 'rgba(176, 70, 10, 0.75)',
    gapText: '#7a3306',
    holdFill: 'rgba(124, 58, 237, 0.12)',
    holdEdge: 'rgba(109, 40, 217, 0.7)',
    holdText: '#4c1d95',
    deadAirFill: 'rgba(234, 179, 8, 0.26)',
    deadAirStrip: '#b58900',
    overtalkFill: 'rgba(219, 39, 119, 0.16)',
    overtalkStrip: '#c0266d',
    note: '#7b3fb0',
    played: 'rgba(31, 95, 168, 0.10)',
    heard: '#6f9fd8',
    playhead: '#c62828',
  };
  const LANE_LABELS = ['Agent', 'Customer'];
  const TOP = 14; // strip for note markers
  const BOTTOM = 6; // strip showing the heard ranges
  const FONT = '11px system-ui, -apple-system, "Segoe UI", sans-serif';

  const cssHeight = Number(canvas.getAttribute('height')) || 160;
  // Inline so the canvas never sizes itself from its bitmap (which would feed the resize
  // observer its own changes) even if the stylesheet failed to load.
  canvas.style.width = '100%';
  canvas.style.height = `${cssHeight}px`;
  canvas.style.display = 'block';
  const ctx2d = canvas.getContext('2d');
  const layer = document.createElement('canvas');
  const layerCtx = layer.getContext('2d');
  let cssWidth = 0;
  let dpr = 1;
  let layerDirty = true;

  function resize() {
    const w = canvas.clientWidth;
    const r = window.devicePixelRatio || 1;
    if (w <= 0 || (w === cssWidth && r === dpr)) return;
    cssWidth = w;
    dpr = r;
    canvas.width = layer.width = Math.round(w * r);
    canvas.height = layer.height = Math.round(cssHeight * r);
    layerDirty = true;
    render();
  }

  function laneHeight() {
    return (cssHeight - TOP - BOTTOM) / 2;
  }

  function labelBox(g, text, x, yMid, color) {
    g.font = FONT;
    const w = g.measureText(text).width + 6;
    const x0 = clamp(x, 0, Math.max(0, cssWidth - w));
    g.fillStyle = 'rgba(255, 255, 255, 0.85)';
    g.fillRect(x0, yMid - 7, w, 14);
    g.fillStyle = color;
    g.textBaseline = 'middle';
    g.fillText(text, x0 + 3, yMid + 0.5);
  }

  function drawLanePeaks(g, ch, y0, laneH, span) {
    const mins = peaks.mins[ch];
    const maxs = peaks.maxs[ch];
    const n = peaks.length;
    const perSecond = peaks.sampleRate / peaks.samplesPerPixel;
    const cols = layer.width; // one column per device pixel: crisp on HiDPI screens
    const colW = cssWidth / cols;
    const mid = y0 + laneH / 2;
    const amp = laneH / 2 - 2;
    const minH = 1 / dpr;
    g.beginPath();
    for (let i = 0; i < cols; i++) {
      // Peaks pixels under this column: min of mins and max of maxes, at least one pixel.
      const a = Math.floor(((i * span) / cols) * perSecond);
      if (a >= n) break;
      const b = clamp(Math.ceil((((i + 1) * span) / cols) * perSecond), a + 1, n);
      let lo = mins[a];
      let hi = maxs[a];
      for (let k = a + 1; k < b; k++) {
        if (mins[k] < lo) lo = mins[k];
        if (maxs[k] > hi) hi = maxs[k];
      }
      const yTop = mid - hi * amp;
      g.rect(i * colW, yTop, colW, Math.max(minH, mid - lo * amp - yTop));
    }
    g.fillStyle = COLORS.wave[ch];
    g.fill();
  }

  function drawStatic() {
    layerDirty = false;
    const g = layerCtx;
    const W = cssWidth;
    const H = cssHeight;
    const laneH = laneHeight();
    const span = duration();
    const xOf = (s) => (span > 0 ? (s / span) * W : 0);
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, W, H);
    g.fillStyle = COLORS.bg;
    g.fillRect(0, 0, W, H);

    for (let ch = 0; ch < 2; ch++) {
      const y0 = TOP + ch * laneH;
      g.fillStyle = COLORS.laneBg[ch];
      g.fillRect(0, y0, W, laneH);
      g.fillStyle = COLORS.axis;
      g.fillRect(0, y0 + laneH / 2, W, 1 / dpr);
    }

    // Dead air and overtalk: translucent bands under the waveform across both lanes, and a thin
    // strip of the same colour at the top so short ones stay visible.
    if (span > 0) {
      for (const r of regions) {
        const x0 = xOf(r.start);
        const w = Math.max(2, xOf(r.end) - x0);
        const dead = r.kind === 'dead_air';
        g.fillStyle = dead ? COLORS.deadAirFill : COLORS.overtalkFill;
        g.fillRect(x0, TOP, w, 2 * laneH);
        g.fillStyle = dead ? COLORS.deadAirStrip : COLORS.overtalkStrip;
        g.fillRect(x0, TOP - 4, w, 3);
      }
    }

    for (let ch = 0; ch < 2; ch++) {
      if (peaks && ch < peaks.channels && span > 0) drawLanePeaks(g, ch, TOP + ch * laneH, laneH, span);
    }
    g.fillStyle = 'rgba(0, 0, 0, 0.25)';
    g.fillRect(0, TOP + laneH, W, 1 / dpr);

    if (peaksState !== 'ok') {
      const msg = peaksState === 'loading' ? 'Loading waveform…' : 'Waveform unavailable';
      labelBox(g, msg, W / 2 - 50, TOP + laneH, COLORS.label);
    }

    // Pauses (hatched grey) and device gaps (orange tint) cover both lanes; holds (a light
    // violet tint with a top bar) too, but leave the waveform readable: a hold is recorded.
    for (const iv of intervals) {
      const x0 = xOf(iv.start);
      const x1 = xOf(iv.end === null ? span : iv.end);
      const w = Math.max(2, x1 - x0);
      const y0 = TOP;
      const h = 2 * laneH;
      if (iv.kind === 'hold') {
        g.fillStyle = COLORS.holdFill;
        g.fillRect(x0, y0, w, h);
        g.fillStyle = COLORS.holdEdge;
        g.fillRect(x0, y0, w, 3);
      } else if (iv.kind === 'gap') {
        g.fillStyle = COLORS.gapFill;
        g.fillRect(x0, y0, w, h);
        g.fillStyle = COLORS.gapEdge;
        g.fillRect(x0, y0, 1, h);
        g.fillRect(x0 + w - 1, y0, 1, h);
      } else {
        g.fillStyle = COLORS.pauseFill;
        g.fillRect(x0, y0, w, h);
        g.save();
        g.beginPath();
        g.rect(x0, y0, w, h);
        g.clip();
        g.strokeStyle = COLORS.pauseHatch;
        g.lineWidth = 1;
        g.beginPath();
        for (let x = x0 - h; x < x0 + w; x += 6) {
          g.moveTo(x, y0 + h);
          g.lineTo(x + h, y0);
        }
        g.stroke();
        g.restore();
      }
      labelBox(
        g,
        iv.label,
        x0 + 2,
        TOP + laneH,
        iv.kind === 'gap' ? COLORS.gapText : iv.kind === 'hold' ? COLORS.holdText : COLORS.pauseText
      );
    }

    for (let ch = 0; ch < 2; ch++) labelBox(g, LANE_LABELS[ch], 2, TOP + ch * laneH + 9, COLORS.wave[ch]);

    // Notes: a small downward triangle in the top strip and a faint line through the lanes.
    for (const n of notes) {
      const x = clamp(xOf(n.at_ms / 1000), 0, W);
      g.fillStyle = 'rgba(123, 63, 176, 0.35)';
      g.fillRect(x - 0.5, TOP, 1, 2 * laneH);
      g.fillStyle = COLORS.note;
      g.beginPath();
      g.moveTo(x - 5, 2);
      g.lineTo(x + 5, 2);
      g.lineTo(x, TOP - 1);
      g.closePath();
      g.fill();
    }
  }

  function render() {
    if (cssWidth <= 0) return;
    if (layerDirty) drawStatic();
    const W = cssWidth;
    const H = cssHeight;
    const laneH = laneHeight();
    const span = duration();
    const pos = position();
    const x = span > 0 ? clamp(pos / span, 0, 1) * W : 0;
    const c = ctx2d;
    c.setTransform(1, 0, 0, 1, 0, 0);
    c.clearRect(0, 0, canvas.width, canvas.height);
    c.drawImage(layer, 0, 0);
    c.setTransform(dpr, 0, 0, dpr, 0, 0);
    c.fillStyle = COLORS.played;
    c.fillRect(0, TOP, x, 2 * laneH);
    if (span > 0) {
      c.fillStyle = COLORS.heard;
      for (const [s, e] of heardRanges()) {
        c.fillRect((s / span) * W, H - BOTTOM + 1, Math.max(1, ((e - s) / span) * W), BOTTOM - 2);
      }
    }
    c.fillStyle = COLORS.playhead;
    c.fillRect(clamp(x - 1, 0, W - 2), 0, 2, H);
    updateReadouts(pos, span);
  }

  // While playing a frame loop moves the playhead; when paused one frame is drawn on demand.
  let rafId = 0;
  function frame() {
    rafId = 0;
    heardTick();
    render();
    if (!audio.paused) requestRender();
  }
  function requestRender() {
    if (!rafId) rafId = requestAnimationFrame(frame);
  }
  function invalidate() {
    layerDirty = true;
    requestRender();
  }

  let resizeQueued = false;
  function queueResize() {
    if (resizeQueued) return;
    resizeQueued = true;
    requestAnimationFrame(() => {
      resizeQueued = false;
      resize();
    });
  }
  if ('ResizeObserver' in window) new ResizeObserver(queueResize).observe(canvas);
  window.addEventListener('resize', queueResize); // also catches zoom (devicePixelRatio) changes

  // ---------------------------------------------------------------------------------------
  // Readouts: time, share link, slider semantics, current note. Only touch the DOM on change.

  let lastTimeText = '';
  let lastShare = '';
  let lastSecond = -1;
  let currentNoteEl = null;

  // The canvas doubles as an accessible slider; the keys are handled by the global shortcuts.
  canvas.tabIndex = 0;
  canvas.setAttribute('role', 'slider');
  canvas.setAttribute('aria-label', 'Playback position');
  canvas.setAttribute('aria-valuemin', '0');

  function updateReadouts(pos, span) {
    const hours = span >= 3600;
    const text = `${fmtTime(pos, hours)} / ${fmtTime(span, hours)}`;
    if (ui.time && text !== lastTimeText) {
      ui.time.textContent = text;
      lastTimeText = text;
    }
    const sec = Math.floor(pos + 1e-6);
    const share = `#t=${sec}`;
    if (ui.share && share !== lastShare) {
      ui.share.setAttribute('href', share);
      lastShare = share;
    }
    if (sec !== lastSecond) {
      lastSecond = sec;
      canvas.setAttribute('aria-valuemax', String(Math.floor(span)));
      canvas.setAttribute('aria-valuenow', String(sec));
      canvas.setAttribute('aria-valuetext', text.replace(' / ', ' of '));
    }
    highlightCurrentNote(pos);
  }

  function highlightCurrentNote(pos) {
    if (!ui.noteList) return;
    // The note nearest before the playhead; a little slack so seeking exactly onto a note
    // (which may land a few ms early) still selects it.
    const limit = pos * 1000 + 250;
    let idx = -1;
    for (let i = 0; i < notes.length && notes[i].at_ms <= limit; i++) idx = i;
    const el = idx >= 0 ? ui.noteList.children[idx] || null : null;
    if (el === currentNoteEl) return;
    if (currentNoteEl) currentNoteEl.classList.remove('current');
    if (el) el.classList.add('current');
    currentNoteEl = el;
  }

  // ---------------------------------------------------------------------------------------
  // Seeking on the canvas: click or drag.

  let dragging = false;
  function seekFromPointer(e) {
    const rect = canvas.getBoundingClientRect();
    if (rect.width <= 0) return;
    seek((clamp((e.clientX - rect.left) / rect.width, 0, 1)) * duration());
  }
  canvas.addEventListener('pointerdown', (e) => {
    if (e.button !== 0) return;
    dragging = true;
    try {
      canvas.setPointerCapture(e.pointerId);
    } catch {
      // Capture is a nicety for drags leaving the canvas; seeking works without it.
    }
    seekFromPointer(e);
    e.preventDefault(); // no text selection while dragging
  });
  canvas.addEventListener('pointermove', (e) => {
    if (dragging) {
      hideTip();
      seekFromPointer(e);
    } else {
      showTip(e);
    }
  });
  canvas.addEventListener('pointerleave', () => hideTip());
  const endDrag = () => {
    dragging = false;
  };
  canvas.addEventListener('pointerup', endDrag);
  canvas.addEventListener('pointercancel', endDrag);
  canvas.addEventListener('lostpointercapture', endDrag);

  // ---------------------------------------------------------------------------------------
  // Legend under the waveform (only the kinds this call has) and the hover tip that names the
  // region under the pointer.

  const legend = document.createElement('div');
  legend.className = 'wave-legend';
  legend.id = 'wave-legend';
  legend.hidden = true;
  canvas.insertAdjacentElement('afterend', legend);

  const tip = document.createElement('div');
  tip.className = 'wave-tip';
  tip.id = 'wave-tip';
  tip.hidden = true;
  tip.setAttribute('role', 'tooltip');
  legend.insertAdjacentElement('afterend', tip);

  const LEGEND = [
    { kind: 'dead_air', cls: 'dead-air', label: 'Dead air', title: 'Both parties silent' },
    { kind: 'overtalk', cls: 'overtalk', label: 'Overtalk', title: 'Both parties speaking at once' },
    { kind: 'pause', cls: 'paused', label: 'Paused', title: 'Recording paused (nothing was recorded)' },
    { kind: 'gap', cls: 'gap', label: 'Gap', title: 'Audio device gap (nothing was recorded)' },
    { kind: 'hold', cls: 'on-hold', label: 'On hold', title: 'Customer on hold (recorded; counted as hold time)' },
  ];

  function renderLegend() {
    legend.textContent = '';
    for (const k of LEGEND) {
      const metric = k.kind === 'dead_air' || k.kind === 'overtalk';
      const n = metric
        ? regions.filter((r) => r.kind === k.kind).length
        : intervals.filter((iv) => iv.kind === k.kind).length;
      if (!n) continue;
      const item = document.createElement('span');
      item.className = 'legend-item';
      item.dataset.kind = k.kind;
      item.dataset.count = String(n);
      item.title = k.title;
      const sw = document.createElement('span');
      sw.className = `swatch ${k.cls}`;
      sw.setAttribute('aria-hidden', 'true');
      item.append(sw, metric ? `${k.label} ×${n}` : k.label);
      legend.append(item);
    }
    legend.hidden = !legend.childNodes.length;
  }

  function describeRegion(r, hours) {
    const range = `${fmtTime(r.start, hours)}–${fmtTime(r.end, hours)}`;
    if (r.kind === 'dead_air') return `Dead air ${range} (${round1(r.end - r.start)} s)`;
    return `Overtalk ${range}${r.interrupter ? `, ${r.interrupter} interrupted` : ''}`;
  }

  function describeInterval(iv, hours) {
    const end = iv.end === null ? '…' : fmtTime(iv.end, hours);
    const what =
      iv.kind === 'gap' ? 'Gap' : iv.kind === 'pause' ? 'Paused' : iv.kind === 'hold' ? 'On hold' : iv.label;
    return `${what} ${fmtTime(iv.start, hours)}–${end}`;
  }

  // Descriptions of everything drawn under canvas x (CSS pixels), with the same minimum width
  // the drawing uses so a short region can still be hovered.
  function regionsAt(x) {
    const span = duration();
    if (span <= 0 || cssWidth <= 0) return [];
    const px = (s) => (s / span) * cssWidth;
    const hit = (start, end) => {
      const x0 = px(start);
      const x1 = Math.max(x0 + 2, px(end));
      return x >= x0 - 1 && x <= x1 + 1;
    };
    const hours = span >= 3600;
    const out = [];
    for (const r of regions) if (hit(r.start, r.end)) out.push(describeRegion(r, hours));
    for (const iv of intervals) {
      if (hit(iv.start, iv.end === null ? span : iv.end)) out.push(describeInterval(iv, hours));
    }
    return out;
  }

  function showTip(e) {
    const rect = canvas.getBoundingClientRect();
    const lines = regionsAt(e.clientX - rect.left);
    if (!lines.length) {
      hideTip();
      return;
    }
    const text = lines.join('\n');
    if (tip.textContent !== text) tip.textContent = text;
    tip.hidden = false;
    // Positioned against its offset parent (#player is position: relative in app.css).
    const host = tip.offsetParent || document.documentElement;
    const hr = host.getBoundingClientRect();
    let left = e.clientX - hr.left + 12;
    if (left + tip.offsetWidth > hr.width - 4) left = Math.max(0, e.clientX - hr.left - 12 - tip.offsetWidth);
    tip.style.left = `${Math.round(left)}px`;
    tip.style.top = `${Math.round(rect.top - hr.top + TOP + 4)}px`;
  }

  function hideTip() {
    if (!tip.hidden) tip.hidden = true;
  }

  // ---------------------------------------------------------------------------------------
  // Per-party mute/solo. The file is agent on channel 0, customer on channel 1; each party's
  // gain feeds both output channels so whoever remains audible is heard on both ears.

  let actx = null;
  let graphFailed = false;
  const gains = { agent: null, customer: null };
  const muted = { agent: false, customer: false };
  let solo = null; // null | 'agent' | 'customer'

  function disableLaneControls(why) {
    for (const lane of LANES) {
      for (const btn of [ui.mute[lane], ui.solo[lane]]) {
        if (!btn) continue;
        btn.disabled = true;
        btn.title = why;
      }
    }
  }

  const AudioCtor = window.AudioContext || window.webkitAudioContext;
  if (!AudioCtor) {
    graphFailed = true;
    disableLaneControls('This browser has no Web Audio, so the parties cannot be muted separately');
  }

  // Created on the first play, inside the user's gesture, so the browser lets it start.
  function ensureGraph() {
    if (actx || graphFailed) return actx;
    let ctx = null;
    try {
      ctx = new AudioCtor();
      const split = ctx.createChannelSplitter(2);
      const merge = ctx.createChannelMerger(2);
      const lanes = LANES.map(() => ctx.createGain());
      // Last: once the element is captured by the context it is silent outside the graph.
      const src = ctx.createMediaElementSource(audio);
      src.connect(split);
      lanes.forEach((g, ch) => {
        split.connect(g, ch);
        g.connect(merge, 0, 0);
        g.connect(merge, 0, 1);
      });
      merge.connect(ctx.destination);
      ctx.addEventListener('statechange', () => {
        if (ctx.state === 'running') showOutputMsg('');
      });
      actx = ctx;
      gains.agent = lanes[0];
      gains.customer = lanes[1];
      applyLanes();
    } catch (err) {
      graphFailed = true;
      if (ctx && ctx.close) ctx.close().catch(() => {});
      disableLaneControls(
        `Muting one party needs Web Audio, which could not start here (${err.message || err}); plain playback still works`
      );
    }
    return actx;
  }

  function applyLanes() {
    setLanes(ui, gains, muted, solo);
  }

  function toggleMute(lane) {
    if (graphFailed) return;
    muted[lane] = !muted[lane];
    applyLanes();
  }

  function toggleSolo(lane) {
    if (graphFailed) return;
    solo = solo === lane ? null : lane;
    // Soloing a party must make it audible, even if it had been muted before.
    if (solo === lane) muted[lane] = false;
    applyLanes();
  }

  for (const lane of LANES) {
    if (ui.mute[lane]) ui.mute[lane].addEventListener('click', () => toggleMute(lane));
    if (ui.solo[lane]) ui.solo[lane].addEventListener('click', () => toggleSolo(lane));
  }

  // ---------------------------------------------------------------------------------------
  // Playback controls

  function play() {
    const ctx = ensureGraph();
    if (ctx && ctx.state !== 'running') ctx.resume().catch(() => {});
    let p;
    try {
      p = audio.play();
    } catch (err) {
      playRefused(err);
      return;
    }
    if (p && p.catch) p.catch(playRefused);
  }

  function playRefused(err) {
    // A pause() before playback began rejects play() with AbortError: that is not a failure.
    if (err && err.name === 'AbortError') return;
    if (err && err.name === 'NotAllowedError') {
      showPlayMsg('The browser refused to start playback; press Play again.');
    } else if (err && err.name === 'NotSupportedError') {
      showPlayMsg('This browser cannot play the recording, or it could not be loaded.');
    } else {
      showPlayMsg(`Playback failed: ${(err && err.message) || err}`);
    }
  }

  function togglePlay() {
    if (audio.paused || audio.ended) play();
    else audio.pause();
  }

  function setPlayLabel() {
    if (ui.play) ui.play.textContent = audio.paused ? 'Play' : 'Pause';
  }

  function applySpeed() {
    if (!ui.speed) return;
    const rate = clamp(parseFloat(ui.speed.value) || 1, 0.5, 2);
    audio.preservesPitch = true;
    audio.defaultPlaybackRate = rate; // survives a reload of the source
    audio.playbackRate = rate;
  }

  function stepSpeed(delta) {
    if (!ui.speed) return;
    ui.speed.selectedIndex = clamp(ui.speed.selectedIndex + delta, 0, ui.speed.options.length - 1);
    applySpeed();
  }

  if (ui.play) ui.play.addEventListener('click', togglePlay);
  if (ui.back5) ui.back5.addEventListener('click', () => skip(-5));
  if (ui.fwd5) ui.fwd5.addEventListener('click', () => skip(5));
  if (ui.speed) ui.speed.addEventListener('change', applySpeed);
  audio.preservesPitch = true;
  applySpeed();

  audio.addEventListener('play', () => {
    setPlayLabel();
    requestRender();
  });
  audio.addEventListener('playing', () => {
    heardTick(); // start the range exactly where playback starts
    showPlayMsg('');
    requestRender();
    // The element now plays through the audio graph: if the context never starts (no output
    // device, a browser policy), time runs on in silence, so say so instead of leaving the
    // reviewer wondering.
    if (actx && actx.state !== 'running') {
      setTimeout(() => {
        if (actx && actx.state !== 'running' && !audio.paused) {
          showOutputMsg('The browser has not started audio output (Web Audio is suspended); if you hear nothing, press Play again or check the sound device.');
        }
      }, 2000);
    }
  });
  audio.addEventListener('pause', () => {
    setPlayLabel();
    heardStop();
    requestRender();
  });
  audio.addEventListener('ended', () => {
    setPlayLabel();
    heardStop();
    requestRender();
  });
  audio.addEventListener('seeking', () => {
    heardClose(); // playback resumes elsewhere: the current range ends where it was
    heard.resumeAt = null;
    requestRender();
  });
  audio.addEventListener('seeked', requestRender);
  audio.addEventListener('timeupdate', () => {
    heardTick();
    requestRender();
  });
  audio.addEventListener('loadedmetadata', () => {
    if (pendingSeek !== null) {
      const t = pendingSeek;
      pendingSeek = null;
      seek(t);
    }
    invalidate();
  });
  audio.addEventListener('durationchange', invalidate);
  audio.addEventListener('error', () => {
    const code = audio.error ? audio.error.code : 0;
    const why =
      code === 4
        ? 'the recording was not found, or this browser cannot play it'
        : code === 3
          ? 'the recording could not be decoded'
          : code === 2
            ? 'a network error interrupted the download'
            : 'unknown error';
    showPlayMsg(`Could not load the audio: ${why}.`);
  });

  // ---------------------------------------------------------------------------------------
  // Heard audit: ranges of media time actually played, merged while playback is contiguous,
  // reported when playback stops and when the page goes away.

  // resumeAt: where playback was paused, while no seek has happened since. Resuming without a
  // seek is continuous by definition, but the element may report a slightly later position
  // (its output buffer), so the next range is started from there instead.
  const heard = { all: [], pending: [], open: null, resumeAt: null };

  // Ranges are kept unrounded (so pausing and resuming at the same spot leaves no sliver
  // uncovered) and rounded to 0.1 s only when reported or handed out.
  function mergeRanges(list, slack = 0.1) {
    const sorted = list.map((r) => [r[0], r[1]]).sort((a, b) => a[0] - b[0]);
    const out = [];
    for (const r of sorted) {
      const last = out[out.length - 1];
      if (last && r[0] <= last[1] + slack + 1e-9) last[1] = Math.max(last[1], r[1]);
      else out.push(r);
    }
    return out;
  }

  function roundedRanges(list) {
    const rounded = mergeRanges(list).map((r) => [round1(r[0]), round1(r[1])]);
    return mergeRanges(rounded.filter((r) => r[1] > r[0]), 0);
  }

  // True if t continues the open range (no jump backwards, no leap beyond normal progress).
  function heardExtend(t) {
    const o = heard.open;
    if (!o) return false;
    const maxStep = 1.5 * Math.max(1, audio.playbackRate || 1);
    if (t < o[1] - 0.05 || t - o[1] > maxStep) return false;
    o[1] = Math.max(o[1], t);
    return true;
  }

  function heardTick() {
    if (audio.paused || audio.seeking || audio.readyState < 2) return;
    const t = audio.currentTime;
    if (!heardExtend(t)) {
      heardClose();
      const r = heard.resumeAt;
      heard.open = r !== null && t >= r && t - r < 1 ? [r, t] : [t, t];
    }
    heard.resumeAt = null;
  }

  function heardClose() {
    const o = heard.open;
    heard.open = null;
    if (!o) return;
    if (o[1] <= o[0]) return;
    heard.pending.push(o);
    heard.all.push(o);
  }

  function heardStop() {
    heardExtend(audio.currentTime);
    if (heard.open) heard.resumeAt = heard.open[1];
    heardClose();
    flushHeard(false);
  }

  function flushHeard(leaving) {
    if (!heard.pending.length) return;
    const kept = heard.pending;
    heard.pending = [];
    const ranges = roundedRanges(kept);
    if (!ranges.length) return;
    const body = JSON.stringify({ ranges });
    if (leaving && navigator.sendBeacon) {
      try {
        if (navigator.sendBeacon(urls.heardBeacon, new Blob([body], { type: 'application/json' }))) return;
      } catch {
        // Fall through to fetch with keepalive, which also outlives the page.
      }
    }
    request('POST', urls.heard, body, { contentType: 'application/json', keepalive: leaving })
      .then(() => showHeardMsg(''))
      .catch((err) => {
        // Keep them for the next report: the audit must not lose what was heard.
        heard.pending = heard.pending.concat(kept);
        if (!leaving) showHeardMsg(`Could not record what you listened to (will retry): ${err.message}`);
      });
  }

  function heardRanges() {
    return roundedRanges(heard.open ? heard.all.concat([heard.open]) : heard.all);
  }

  window.addEventListener('pagehide', () => {
    const playing = !audio.paused;
    heardExtend(audio.currentTime);
    heardClose();
    flushHeard(true);
    // If the page is kept in the back/forward cache and playback continues, keep tracking.
    if (playing) heard.open = [audio.currentTime, audio.currentTime];
  });

  // ---------------------------------------------------------------------------------------
  // Timestamp links: #t=83, #t=83.5, #t=1:23

  {
    const t = parseHashTime(location.hash);
    if (t !== null) seek(t); // before metadata this is kept pending and applied on load
  }
  // "Link to this moment" sets the hash to the current whole second; following it must not
  // jump playback back to the start of that second, so that one hashchange is ignored.
  let shareClick = null;
  if (ui.share) {
    ui.share.addEventListener('click', () => {
      shareClick = { hash: ui.share.getAttribute('href'), at: performance.now() };
    });
  }
  window.addEventListener('hashchange', () => {
    const own = shareClick && shareClick.hash === location.hash && performance.now() - shareClick.at < 1000;
    shareClick = null;
    if (own) return;
    const t = parseHashTime(location.hash);
    if (t !== null) seek(t);
  });

  // ---------------------------------------------------------------------------------------
  // Keyboard shortcuts

  let swallowSpaceUp = false;

  function isTypingTarget(el) {
    return !!(
      el &&
      el.closest &&
      (el.isContentEditable || el.closest('input, textarea, select, [contenteditable=""], [contenteditable="true"]'))
    );
  }

  document.addEventListener('keydown', (e) => {
    if (e.defaultPrevented || e.isComposing) return;
    const altGr = e.getModifierState && e.getModifierState('AltGraph');
    if ((e.ctrlKey || e.metaKey || e.altKey) && !altGr) return; // leave browser shortcuts alone
    const target = e.target;
    if (isTypingTarget(target)) {
      // Escape leaves the note field so the shortcuts work again.
      if (e.key === 'Escape' && target === ui.noteText) target.blur();
      return;
    }
    let handled = true;
    switch (e.key) {
      case ' ':
      case 'Spacebar':
        if (!e.repeat) togglePlay();
        // A focused button would also "click" on key-up; that would toggle a second time.
        swallowSpaceUp = !!(target && target.closest && target.closest('button, a, summary, [role="button"]'));
        break;
      case 'ArrowLeft':
        skip(e.shiftKey ? -1 : -5);
        break;
      case 'ArrowRight':
        skip(e.shiftKey ? 1 : 5);
        break;
      case 'Home':
        if (target === canvas) seek(0);
        else handled = false;
        break;
      case 'End':
        if (target === canvas) seek(duration());
        else handled = false;
        break;
      case '[':
        stepSpeed(-1);
        break;
      case ']':
        stepSpeed(1);
        break;
      case 'a':
      case 'A':
        toggleMute('agent');
        break;
      case 'c':
      case 'C':
        toggleMute('customer');
        break;
      case 'n':
      case 'N':
        if (ui.noteText) ui.noteText.focus(); // preventDefault keeps the "n" out of the field
        else handled = false;
        break;
      default:
        handled = false;
    }
    if (handled) e.preventDefault();
  });
  document.addEventListener('keyup', (e) => {
    if (swallowSpaceUp && (e.key === ' ' || e.key === 'Spacebar')) {
      swallowSpaceUp = false;
      e.preventDefault();
    }
  });

  // ---------------------------------------------------------------------------------------
  // Notes

  function normaliseNote(n) {
    return {
      id: n.id,
      at_ms: Math.max(0, Number(n.at_ms) || 0),
      author: n.author == null ? '' : String(n.author),
      text: n.text == null ? '' : String(n.text),
      created_at_utc: n.created_at_utc || null,
    };
  }

  function sortNotes() {
    notes.sort((a, b) => a.at_ms - b.at_ms || (a.id > b.id ? 1 : a.id < b.id ? -1 : 0));
  }

  function renderNotes() {
    if (!ui.noteList) return;
    const list = ui.noteList;
    list.textContent = '';
    currentNoteEl = null;
    for (const n of notes) {
      const li = document.createElement('li');
      li.dataset.noteId = String(n.id);
      li.dataset.atMs = String(n.at_ms);
      const at = document.createElement('a');
      at.className = 'at';
      at.href = `#t=${n.at_ms / 1000}`;
      at.textContent = fmtTime(n.at_ms / 1000);
      const who = document.createElement('span');
      who.className = 'author';
      who.textContent = n.author;
      if (n.created_at_utc) {
        const d = new Date(n.created_at_utc);
        if (!Number.isNaN(d.getTime())) who.title = `Written ${d.toLocaleString()}`;
      }
      const text = document.createElement('span');
      text.className = 'text';
      text.textContent = n.text;
      li.append(at, ' ', who, ' ', text);
      if (currentUser && n.author === currentUser) {
        const del = document.createElement('button');
        del.type = 'button';
        del.className = 'del';
        del.textContent = 'Delete';
        del.setAttribute('aria-label', `Delete note at ${fmtTime(n.at_ms / 1000)}`);
        li.append(' ', del);
      }
      list.append(li);
    }
    highlightCurrentNote(position());
  }

  function setNotes(list) {
    notes = list.map(normaliseNote);
    sortNotes();
    renderNotes();
    invalidate();
  }

  if (ui.noteList) {
    ui.noteList.addEventListener('click', (e) => {
      const li = e.target.closest('li');
      if (!li || !ui.noteList.contains(li)) return;
      const del = e.target.closest('button.del');
      if (del) {
        deleteNote(li.dataset.noteId, del);
        return;
      }
      // The timestamp link also sets the hash (so the URL can be shared); seeking here too
      // covers clicking the same note twice, which fires no hashchange.
      seek(Number(li.dataset.atMs) / 1000);
    });
  }

  async function deleteNote(id, btn) {
    btn.disabled = true;
    try {
      await request('DELETE', urls.note(id));
      notes = notes.filter((n) => String(n.id) !== String(id));
      renderNotes();
      invalidate();
      showNoteMsg('');
      if (ui.noteText) ui.noteText.focus(); // the focused button is gone; keep focus nearby
    } catch (err) {
      btn.disabled = false;
      showNoteMsg(`Could not delete the note: ${err.message}`);
    }
  }

  if (ui.noteForm && ui.noteText) {
    ui.noteForm.addEventListener('submit', async (e) => {
      e.preventDefault();
      const text = ui.noteText.value.trim();
      if (!text) {
        showNoteMsg('Write the note first.');
        ui.noteText.focus();
        return;
      }
      const submit = ui.noteForm.querySelector('button[type="submit"], button:not([type])');
      if (submit) submit.disabled = true;
      try {
        const at_ms = Math.round(position() * 1000);
        const note = await api('POST', urls.notes, { at_ms, text });
        if (!note || typeof note !== 'object') throw new HttpError(0, 'the server did not return the note');
        notes.push(normaliseNote(note));
        sortNotes();
        renderNotes();
        invalidate();
        ui.noteText.value = '';
        showNoteMsg('');
      } catch (err) {
        showNoteMsg(`Could not add the note: ${err.message}`);
      } finally {
        if (submit) submit.disabled = false;
      }
    });
  }

  // ---------------------------------------------------------------------------------------
  // Loading: call JSON and peaks in parallel; either may fail without hiding the other.

  async function loadCall() {
    const data = await api('GET', urls.call);
    if (!data || typeof data !== 'object') throw new HttpError(0, 'the server did not return the call');
    callDurationMs = Number(data.duration_ms) || 0;
    intervals = (Array.isArray(data.intervals) ? data.intervals : []).map((iv) => ({
      kind: iv.kind === 'gap' || iv.kind === 'hold' ? iv.kind : 'pause',
      label:
        iv.kind === 'gap' ? 'gap' : iv.kind === 'pause' ? 'paused' : iv.kind === 'hold' ? 'on hold' : String(iv.kind),
      start: Math.max(0, Number(iv.start_ms) || 0) / 1000,
      end: iv.end_ms == null ? null : Number(iv.end_ms) / 1000,
    }));
    regions = metricRegions(data.metrics);
    setNotes(Array.isArray(data.notes) ? data.notes : []);
    renderLegend();
  }

  // Dead air and overtalk spans of the metrics object (null while recording), in seconds.
  function metricRegions(m) {
    if (!m || typeof m !== 'object') return [];
    const out = [];
    const add = (kind, list) => {
      for (const r of Array.isArray(list) ? list : []) {
        const start = Number(r && r.start_ms);
        const end = Number(r && r.end_ms);
        if (!Number.isFinite(start) || !Number.isFinite(end) || end <= start) continue;
        const reg = { kind, start: Math.max(0, start) / 1000, end: end / 1000 };
        if (kind === 'overtalk' && (r.interrupter === 'agent' || r.interrupter === 'customer')) {
          reg.interrupter = r.interrupter;
        }
        out.push(reg);
      }
    };
    add('dead_air', m.dead_air);
    add('overtalk', m.overtalk);
    return out.sort((a, b) => a.start - b.start || a.end - b.end);
  }

  async function loadPeaks() {
    let res;
    try {
      res = await request('GET', urls.peaks);
    } catch (err) {
      if (err.status === 404) {
        throw new HttpError(404, 'the call may still be recording; reload in a moment');
      }
      throw err;
    }
    peaks = parsePeaks(await res.arrayBuffer());
  }

  const failures = [];
  const loads = [
    loadCall().catch((err) => {
      failures.push(`Could not load the call: ${err.message}`);
    }),
    loadPeaks().then(
      () => {
        peaksState = 'ok';
      },
      (err) => {
        peaksState = 'failed';
        failures.push(`Could not load the waveform: ${err.message}`);
      }
    ),
  ];
  Promise.all(loads).then(() => {
    resize();
    layerDirty = true;
    render(); // draw now, synchronously, so "ready" really means drawn
    if (failures.length) {
      const msg = failures.join('; ');
      document.body.dataset.playerError = msg;
      showLoadErrors(failures);
    } else {
      document.body.dataset.playerReady = '1';
    }
  });

  // ---------------------------------------------------------------------------------------
  // Hook for automated browser tests.

  window.callrecPlayer = {
    audio,
    get ctx() {
      return actx;
    },
    gains,
    get peaks() {
      return peaks
        ? {
            sampleRate: peaks.sampleRate,
            samplesPerPixel: peaks.samplesPerPixel,
            length: peaks.length,
            channels: peaks.channels,
          }
        : null;
    },
    seek,
    play,
    heardRanges,
    // Dead air and overtalk drawn on the waveform, in seconds.
    get regions() {
      return regions.map((r) => ({ kind: r.kind, start: r.start, end: r.end }));
    },
    // The playhead in whole milliseconds (a seek requested before the metadata counts).
    currentMs: () => Math.round(position() * 1000),
  };
  // Scripts loaded before this one (or that start waiting for it) listen for this.
  document.dispatchEvent(new Event('callrec:player-ready'));

  setPlayLabel();
  applyLanes();
  resize();
  requestRender();
})();
