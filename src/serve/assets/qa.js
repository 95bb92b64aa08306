// qa.js — the review queue page (/qa) and the scorecard/script TOML editor (/qa/edit/...):
// draw a sampling plan, create a plan, start a calibration session, swap an assignment (a
// reason is required), save an edited card or script. Every change goes through the JSON API
// with the session's CSRF token (common.js `api`, which the page loads first); the queue page
// reloads to show the new state.
'use strict';
(() => {
  const root = document.getElementById('qa') || document.getElementById('qa-edit');
  if (!root) return;
  const { api } = window.callrec;
  const msg = document.getElementById('qa-msg');

  function say(text, kind = 'error') {
    msg.textContent = text;
    msg.className = kind;
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
      const data = await api('POST', url, document.getElementById('edit-text').value, {
        contentType: 'application/toml',
      });
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
