// qa.js — the review queue page (/qa): draw a sampling plan, create a plan, start a
// calibration session, swap an assignment (a reason is required). Every change goes through
// the JSON API with the session's CSRF token; the page reloads to show the new state.
'use strict';
(() => {
  const root = document.getElementById('qa') || document.getElementById('qa-edit');
  if (!root) return;
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || '';
  const msg = document.getElementById('qa-msg');

  function say(text, kind = 'error') {
    msg.textContent = text;
    msg.className = kind;
  }

  async function api(method, url, body) {
    const res = await fetch(url, {
      method,
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json', 'x-csrf-token': csrf },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!res.ok) {
      const why = (data && data.error) || `HTTP ${res.status}`;
      throw new Error(res.status === 401 ? 'Your session ended; log in again.' : why);
    }
    return data;
  }

  const list = (s) =>
    String(s || '')
      .split(/[,\s]+/)
      .map((x) => x.trim())
      .filter(Boolean);

  async function run(button, what, fn) {
    button.disabled = true;
    try {
      const text = await fn();
      say(text, 'ok');
      setTimeout(() => location.reload(), 600);
    } catch (err) {
      say(`${what} failed: ${err.message}`);
      button.disabled = false;
    }
  }

  root.addEventListener('click', (ev) => {
    const b = ev.target.closest('button');
    if (!b) return;
    if (b.classList.contains('draw')) {
      run(b, 'Drawing', async () => {
        const r = await api('POST', `/api/plans/${encodeURIComponent(b.dataset.plan)}/draw`, {});
        return `Drawn with seed ${r.seed}: ${r.assignments.length} call(s) assigned out of ${r.candidates} candidate(s).`;
      });
    } else if (b.classList.contains('swap')) {
      const reason = prompt('Why swap this call? (required, kept in the audit log)');
      if (reason === null) return;
      if (!reason.trim()) {
        say('A swap needs a reason.');
        return;
      }
      run(b, 'Swapping', async () => {
        const r = await api('POST', `/api/assignments/${encodeURIComponent(b.dataset.assignment)}/swap`, { reason });
        return r ? `Swapped for call ${r.call_id}.` : 'Swapped; no other call of this agent was left to draw.';
      });
    }
  });

  // The TOML editor (/qa/edit/{kind}/{slug}).
  const save = document.getElementById('edit-save');
  save?.addEventListener('click', async () => {
    const url = root.dataset.kind === 'script' ? '/api/scripts' : '/api/scorecards';
    save.disabled = true;
    try {
      const res = await fetch(url, {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'content-type': 'application/toml', 'x-csrf-token': csrf },
        body: document.getElementById('edit-text').value,
      });
      const data = await res.json().catch(() => null);
      if (!res.ok) throw new Error((data && data.error) || `HTTP ${res.status}`);
      const version = data.version ?? (data.card && data.card.version);
      say(`Saved: version ${version}.`, 'ok');
    } catch (err) {
      say(`Not saved: ${err.message}`);
    } finally {
      save.disabled = false;
    }
  });

  const planForm = document.getElementById('plan-form');
  planForm?.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const f = new FormData(planForm);
    const filters = Object.fromEntries(new URLSearchParams(String(f.get('filters') || '')));
    const quota = String(f.get('quota_per_agent') || '').trim();
    const body = {
      name: String(f.get('name') || '').trim(),
      filters,
      quota_per_agent: quota ? Number(quota) : null,
      reviewers: list(f.get('reviewers')),
      scorecard: String(f.get('scorecard') || '').trim(),
      due_days: Number(f.get('due_days') || 7),
    };
    run(planForm.querySelector('button'), 'Creating the plan', async () => {
      await api('POST', '/api/plans', body);
      return `Plan “${body.name}” created; draw it to deal calls.`;
    });
  });

  const calForm = document.getElementById('calibration-form');
  calForm?.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const f = new FormData(calForm);
    const reference = String(f.get('reference') || '').trim();
    const body = {
      call_id: Number(f.get('call_id')),
      scorecard: String(f.get('scorecard') || '').trim(),
      reviewers: list(f.get('reviewers')),
      reference: reference || null,
      due_days: Number(f.get('due_days') || 3),
    };
    run(calForm.querySelector('button'), 'Starting the session', async () => {
      const r = await api('POST', '/api/calibrations', body);
      return `Session ${r.id} started; each reviewer finds a draft on call ${r.call_id}.`;
    });
  });
})();
