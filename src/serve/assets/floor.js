// floor.js — the floor overview (/floor): polls /api/floor about once a second and redraws the
// table of seats (state, agent, call duration, live levels per party, dropped frames, device
// down, alarms, a listen link). Polling pauses while the tab is hidden and resumes at once when
// it shows again. Never reloads the page; a failed poll says so and keeps the last table.
'use strict';
(() => {
  const { el, api } = window.callrec;
  const POLL_MS = 1000;
  // Levels shown from -60 dBFS (the default noise floor) to 0.
  const FLOOR_DBFS = -60;
  const tbody = document.getElementById('floor-seats');
  const state = document.getElementById('floor-state');
  const boxAlarms = document.getElementById('floor-alarms');
  let timer = null;
  let inFlight = false;

  const duration = (ms) => {
    const s = Math.floor(ms / 1000);
    const mm = String(Math.floor(s / 60) % 60).padStart(2, '0');
    const ss = String(s % 60).padStart(2, '0');
    return s >= 3600 ? `${Math.floor(s / 3600)}:${mm}:${ss}` : `${Math.floor(s / 60)}:${ss}`;
  };
  const level = (dbfs, party) => {
    const v = Number.isFinite(dbfs) ? Math.max(FLOOR_DBFS, Math.min(0, dbfs)) : FLOOR_DBFS;
    return el('meter', {
      class: `level ${party}`, min: FLOOR_DBFS, max: 0, low: -20, high: -6, optimum: -30, value: v,
      title: Number.isFinite(dbfs) ? `${dbfs.toFixed(1)} dBFS` : 'silent',
    });
  };
  const alarmList = (alarms) =>
    alarms.length
      ? el('ul', { class: 'alarms' }, alarms.map((a) =>
          el('li', { class: 'alarm', dataset: { kind: a.kind }, title: `since ${a.raised_at_utc}` },
            el('strong', { text: a.kind }), ` ${a.detail}`)))
      : null;

  function row(s) {
    const st = s.status;
    const live = st !== null;
    const down = live && st.inputs_down.length ? `down: ${st.inputs_down.join(', ')}` : (live ? 'ok' : '');
    const label = live ? st.state + (st.on_hold ? ' (hold)' : '') : 'unknown';
    return el('tr', { dataset: { seat: s.seat, state: live ? st.state : 'unknown' },
      class: s.alarms.length ? 'alarmed' : null },
      el('td', { text: s.seat }),
      el('td', { class: 'state', text: label }),
      el('td', { text: (live && st.agent) || '' }),
      el('td', { class: 'num', text: live && st.call_id !== null ? duration(st.call_duration_ms) : '' }),
      el('td', {}, live ? level(st.agent_dbfs, 'agent') : null),
      el('td', {}, live ? level(st.customer_dbfs, 'customer') : null),
      el('td', { class: 'num', text: live ? String(st.dropped_frames) : '' }),
      el('td', { class: live && st.inputs_down.length ? 'down' : null, text: down }),
      el('td', {}, alarmList(s.alarms)),
      el('td', {}, el('a', { href: `/live/${encodeURIComponent(s.seat)}`, text: 'listen' })));
  }

  async function poll() {
    timer = null;
    inFlight = true;
    try {
      const f = await api('GET', '/api/floor');
      state.textContent = f.recorder
        ? `Live · ${new Date().toLocaleTimeString()}`
        : 'The recorder is not reachable: no live state (is `callrec record` or `callrec run` up?)';
      state.className = f.recorder ? 'flash' : 'error';
      tbody.replaceChildren(...f.seats.map(row));
      boxAlarms.replaceChildren(...(f.alarms.length ? [el('p', { class: 'error' }, 'Box alarms:'), alarmList(f.alarms)] : []));
    } catch (e) {
      state.textContent = `Could not refresh: ${e.message}`;
      state.className = 'error';
    }
    inFlight = false;
    if (!document.hidden) timer = setTimeout(poll, POLL_MS);
  }

  document.addEventListener('visibilitychange', () => {
    if (document.hidden) {
      if (timer !== null) clearTimeout(timer);
      timer = null;
    } else if (timer === null && !inFlight) {
      poll();
    }
  });
  poll();
})();
