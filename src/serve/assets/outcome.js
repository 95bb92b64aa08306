// outcome.js — the call's outcome on the call page: a select of the outcomes the call's
// campaign allows (rendered by the server, pages.rs `call`, only for agents and leads), an
// amount field shown for outcomes that take one, and PUT /api/calls/{id}/outcome. Plain ES2020
// in one function scope, using the shared helpers of common.js (window.callrec).
//
// The server is authoritative: it checks the role, the call's scope, the code and the amount
// again, and its refusal (which names the allowed codes) is shown as it is.
//
// Hooks (stable, for people and for tests/it/browser.rs):
//   section#outcome[data-call-id]
//     form#outcome-form > select#outcome-code (option[data-amount="1"] takes an amount),
//       input#outcome-amount, button[type=submit]
//     p.outcome-msg                          the result or the server's refusal
(function () {
  'use strict';
  const { api, say } = window.callrec;
  const section = document.getElementById('outcome');
  const form = document.getElementById('outcome-form');
  if (!section || !form) return;
  const code = document.getElementById('outcome-code');
  const amount = document.getElementById('outcome-amount');
  const callId = section.dataset.callId;

  // Only outcomes that take an amount show the field, so none is sent by mistake.
  function syncAmount() {
    const opt = code.selectedOptions[0];
    const takes = Boolean(opt && opt.dataset.amount === '1');
    amount.hidden = !takes;
    if (!takes) amount.value = '';
  }
  code.addEventListener('change', syncAmount);
  syncAmount();

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = { outcome: code.value };
    if (!amount.hidden && amount.value.trim() !== '') body.amount = Number(amount.value);
    try {
      const s = await api('PUT', `/api/calls/${callId}/outcome`, body);
      const amt = s.amount === null || s.amount === undefined ? '' : ` ${s.amount.toFixed(2)}`;
      say(section, 'outcome-msg', `Outcome set: ${s.code} (${s.class})${amt}`, 'ok');
    } catch (e) {
      say(section, 'outcome-msg', e.message, 'error');
    }
  });
})();
