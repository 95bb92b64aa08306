// complaint.js — the complaints pages: the filing form of /complaints (POST /api/complaints)
// and the step forms of /complaints/{id} (acknowledge, investigate, respond, rule, appeal,
// decide: POST /api/complaints/{id}/{step}), and a `?t=<seconds>` in the page's address opens
// the embedded player at that moment (it becomes the `#t=` the player follows). Plain ES2020
// in one function scope, using the shared helpers of common.js (window.callrec).
//
// The server decides who may take which step and in which order; its refusal is shown as is.
//
// Hooks (stable, for people and for tests/it/browser.rs):
//   form#complaint-form: #complaint-call, #complaint-agent, #complaint-at, #complaint-source,
//     #complaint-category, #complaint-text; p.complaint-msg (result or refusal)
//   main#complaint[data-complaint-id] form.step[data-step] (select[name=ruling],
//     textarea[name=text|reason]); p.step-msg
(function () {
  'use strict';
  const { api, say } = window.callrec;

  const t = new URLSearchParams(location.search).get('t');
  if (t !== null && /^[0-9]+(\.[0-9]+)?$/.test(t) && !location.hash) location.hash = `t=${t}`;

  const fileForm = document.getElementById('complaint-form');
  if (fileForm) {
    const v = (id) => document.getElementById(id).value.trim();
    fileForm.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const body = { source: v('complaint-source'), category: v('complaint-category'), text: v('complaint-text') };
      if (v('complaint-call') !== '') body.call_id = Number(v('complaint-call'));
      else {
        body.agent = v('complaint-agent');
        body.at_utc = v('complaint-at');
      }
      try {
        const k = await api('POST', '/api/complaints', body);
        location.href = `/complaints/${k.id}`;
      } catch (e) {
        say(fileForm.parentNode, 'complaint-msg', e.message, 'error');
      }
    });
  }

  const main = document.getElementById('complaint');
  if (!main) return;
  const id = main.dataset.complaintId;
  for (const form of main.querySelectorAll('form.step')) {
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const body = {};
      for (const f of form.querySelectorAll('select, textarea')) body[f.name] = f.value;
      try {
        await api('POST', `/api/complaints/${id}/${form.dataset.step}`, body);
        location.reload();
      } catch (e) {
        say(form, 'step-msg', e.message, 'error');
      }
    });
  }
})();
