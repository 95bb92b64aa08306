// evaluate.js — QA evaluations on the call page: the list of the call's evaluations with their
// answers, the moment each answer was heard and the disputes; the scoring form for reviewers
// (new evaluation, resume an own draft, save, submit, live preview score); acknowledge and
// per-question disputes for the evaluated agent; dispute decisions for the reviewer, supervisors
// and admins. Plain ES2020 in one function scope: no build step, no modules, no inline styles.
// Uses the shared helpers of common.js (window.callrec), which the page loads first; the preview
// score is common.js `computeScore`, the formula of src/qa/scorecard.rs (both are checked
// against fixtures/score-cases.json).
//
// The server is authoritative for everything: roles only decide which controls are drawn, the
// API checks them again, and the preview score is labelled as such.
//
// Hooks (stable, for people and for tests/it/browser.rs):
//   section#evaluations[data-role][data-agent-id]   rendered by the server (pages.rs `call`)
//   #eval-msg                   section-wide message (p.error or p.flash)
//   ul#eval-list                the call's evaluations, oldest first
//     li[data-eval-id][data-status]      one evaluation; > details (open = expanded) > summary
//       .eval-card .eval-reviewer .eval-status      card name + version, reviewer, status badge
//       .eval-score[data-percent]   "92.9 %" (data-percent: the server's unrounded percent)
//       .eval-passed                "pass" / "fail" badge;  .eval-critical  failed critical questions
//       [data-edit]                 "Continue draft" (own drafts)
//       [data-ack]                  Acknowledge (the evaluated agent; submitted/resolved)
//       tr[data-q="<qid>"]          one answer: text, answer, moment a.eval-at[href="#t=83.5"], comment
//         [data-dispute="<qid>"]             opens the dispute box (the evaluated agent)
//         [data-dispute-reason="<qid>"]      its textarea (at least 10 characters)
//         [data-dispute-send="<qid>"]        sends it
//       .eval-dispute[data-dispute-id]       one dispute: reason, status, decision
//         [data-resolve-note="<did>"]        optional note for the decision
//         [data-resolve-value="<did>"]       new answer for "changed"
//         [data-resolve="<did>"][data-decision="upheld|changed|accepted"]
//       .eval-item-msg              this evaluation's error message
//   select#eval-card, button#eval-new        start a new evaluation (reviewers); the page's
//                                            ?scorecard=<slug> is preselected once cards load
//   p.assignment-banner[data-assignment]     ?assignment=<id>: "Assignment #id: evaluate this
//                                            call with <card name>", first in the section
//   form#eval-form[data-eval-id]             the open draft
//     fieldset[data-section="<sid>"]         one per section; .eval-sec-preview
//     .eval-q[data-q="<qid>"]                one question (class eval-invalid when the server
//                                            named it in an error; aria-invalid on the group)
//     input[name="q:<qid>"]                  answer radios: yes/no/na, 1–5, 0..max
//                                            (select[name="q:<qid>"] for points above 10)
//     button[data-now="<qid>"]               stores the player's current moment for the answer
//     a[data-at="<qid>"]                     that moment as an m:ss link (#t=...)
//     button[data-at-clear="<qid>"]          forgets the moment
//     input[name="comment:<qid>"]            the answer's comment;  textarea#eval-comment overall
//     #eval-preview[data-percent]            client-side preview score
//     #eval-save  #eval-submit  #eval-close  #eval-form-msg
//   window.callrecEval = { evaluations(), reload() }   reload() returns a Promise of the list
//   body[data-eval-ready="1"]   after the first load (also when it failed);
//   body[data-eval-error]       why the first load failed
(() => {
  'use strict';

  const section = document.getElementById('evaluations');
  const root = document.getElementById('call');
  if (!section || !root) return;

  const { el, say, metaContent, fmtTime, fmtDate, HttpError, api, questionsOf, weightOf, grade, computeScore } =
    window.callrec;
  const me = metaContent('user');
  const role = section.dataset.role || '';
  const agentId = section.dataset.agentId || '';
  const callId = root.dataset.callId || '';
  const cid = encodeURIComponent(callId);
  const REVIEWER_ROLES = ['admin', 'supervisor', 'qa'];
  const isReviewer = REVIEWER_ROLES.includes(role);

  // Links from the review queue: /calls/{id}?assignment={aid}&scorecard={slug}.
  const pageParams = new URLSearchParams(location.search);
  const assignmentId = /^\d+$/.test(pageParams.get('assignment') || '') ? pageParams.get('assignment') : '';
  const wantedCard = (pageParams.get('scorecard') || '').trim();

  const urls = {
    list: `/api/calls/${cid}/evaluations`,
    cards: '/api/scorecards',
    card: (slug, v) => `/api/scorecards/${encodeURIComponent(slug)}?version=${encodeURIComponent(v)}`,
    action: (id, what) => `/api/evaluations/${encodeURIComponent(id)}/${what}`,
  };

  // ---------------------------------------------------------------------------------------
  // Small helpers

  const fmtPercent = (p) => `${p.toFixed(1)} %`;

  function momentLink(atMs, extra) {
    return el('a', {
      class: 'eval-at',
      href: `#t=${atMs / 1000}`,
      dataset: { atMs, ...(extra || {}) },
      title: 'Play from this moment',
      text: fmtTime(atMs / 1000),
    });
  }

  function player() {
    return window.callrecPlayer && window.callrecPlayer.audio ? window.callrecPlayer : null;
  }

  // ---------------------------------------------------------------------------------------
  // Scorecards (the score itself is common.js computeScore)

  const cardPromises = new Map(); // "slug@version" -> Promise<card>
  const cards = new Map(); // "slug@version" -> card, once loaded
  const cardKey = (slug, version) => `${slug}@${version}`;

  function cardFor(slug, version) {
    const key = cardKey(slug, version);
    if (!cardPromises.has(key)) {
      const p = api('GET', urls.card(slug, version)).then(
        (stored) => {
          cards.set(key, stored.card);
          return stored.card;
        },
        (err) => {
          cardPromises.delete(key); // retry on the next load
          throw err;
        }
      );
      cardPromises.set(key, p);
    }
    return cardPromises.get(key);
  }

  function findQuestion(card, qid) {
    return card ? questionsOf(card).find((q) => q.id === qid) || null : null;
  }

  // The answer choices of a question: [{value, label}]; N/A last when allowed.
  function choices(q, withNa = !!q.allow_na) {
    const out = [];
    if (q.kind === 'yes_no') {
      out.push({ value: 'yes', label: 'Yes' }, { value: 'no', label: 'No' });
    } else if (q.kind === 'scale') {
      const words = { 1: 'poor', 5: 'excellent' };
      for (let v = 1; v <= 5; v++) out.push({ value: String(v), label: String(v), title: words[v] || '' });
    } else if (q.kind === 'points') {
      for (let v = 0; v <= (q.max_points || 0); v++) out.push({ value: String(v), label: String(v) });
    }
    if (withNa) out.push({ value: 'na', label: 'N/A' });
    return out;
  }

  function describeAnswer(q, value) {
    if (value === 'yes') return 'Yes';
    if (value === 'no') return 'No';
    if (value === 'na') return 'N/A';
    if (q && q.kind === 'scale') return `${value} / 5`;
    if (q && q.kind === 'points') return `${value} / ${q.max_points} points`;
    return String(value);
  }

  function isFailing(q, value) {
    const g = q ? grade(q, value) : undefined;
    return !!(g && g.failing);
  }

  // ---------------------------------------------------------------------------------------
  // Page skeleton

  const list = el('ul', { id: 'eval-list', 'aria-live': 'polite' });
  section.append(list);

  // The assignment this visit came from, right under the heading; the card name replaces the
  // slug once the scorecards are loaded.
  let banner = null;
  function renderBanner(cardName) {
    if (!assignmentId) return;
    if (!banner) {
      banner = el('p', { class: 'assignment-banner', role: 'status', dataset: { assignment: assignmentId } });
      const heading = section.querySelector(':scope > h2');
      section.insertBefore(banner, heading ? heading.nextSibling : section.firstChild);
    }
    banner.textContent = '';
    banner.append(`Assignment #${assignmentId}: evaluate this call`);
    const name = cardName || wantedCard;
    if (name) banner.append(' with ', el('strong', { class: 'assignment-card', text: name }));
  }
  renderBanner('');
  // The section-wide message sits above the list; it is #eval-msg whatever its kind.
  const showSectionMsg = (text, kind = 'error') => {
    say(section, 'eval-section-msg', text, kind, list);
    const p = section.querySelector(':scope > .eval-section-msg');
    if (p) p.id = 'eval-msg';
  };

  let cardSelect = null;
  let newButton = null;
  const formHost = el('div', { id: 'eval-form-host' });
  if (isReviewer) {
    cardSelect = el('select', { id: 'eval-card', name: 'scorecard', disabled: true },
      el('option', { value: '', text: 'Loading scorecards…' }));
    newButton = el('button', { id: 'eval-new', type: 'button', disabled: true, text: 'New evaluation' });
    const newBox = el('div', { class: 'eval-new' },
      el('label', { for: 'eval-card', text: 'Scorecard' }), ' ', cardSelect, ' ', newButton);
    section.append(newBox, formHost);
    newButton.addEventListener('click', createEvaluation);
  } else {
    section.append(formHost);
  }

  // ---------------------------------------------------------------------------------------
  // State

  let evaluations = [];
  const cardErrors = new Map(); // evaluation id -> why its card could not be loaded
  const expanded = new Set(); // evaluation ids whose details are open
  let form = null; // the open draft form's state, see openForm

  // ---------------------------------------------------------------------------------------
  // Loading

  let loadSeq = 0;
  let current = Promise.resolve([]);

  // Loads the list and every card version it uses, then draws it. Rejects (after showing the
  // message) when the list cannot be loaded.
  function reload() {
    const seq = ++loadSeq;
    const p = (async () => {
      const got = await api('GET', urls.list);
      if (!Array.isArray(got)) throw new HttpError(0, 'the evaluation list is not a list');
      const errors = new Map();
      await Promise.all(
        got.map((ev) =>
          cardFor(ev.scorecard, ev.scorecard_version).catch((err) => {
            errors.set(ev.id, err.message);
          })
        )
      );
      if (seq !== loadSeq) return current; // a newer load is under way; it draws
      evaluations = got;
      cardErrors.clear();
      for (const [k, v] of errors) cardErrors.set(k, v);
      renderList();
      showSectionMsg('');
      return got;
    })();
    current = p.catch((err) => {
      if (seq === loadSeq) showSectionMsg(`Could not load the evaluations: ${err.message}`);
      throw err;
    });
    return current;
  }

  // reload() for internal callers: the message is already shown, nothing more to do.
  const refresh = () => reload().catch(() => null);

  async function loadScorecards() {
    try {
      const stored = await api('GET', urls.cards);
      cardSelect.textContent = '';
      cardSelect.append(el('option', { value: '', text: 'Choose a scorecard…' }));
      for (const s of stored) {
        cardSelect.append(el('option', { value: s.card.id, text: `${s.card.name} (v${s.card.version})` }));
      }
      const any = stored.length > 0;
      cardSelect.disabled = !any;
      newButton.disabled = !any;
      if (!any) showSectionMsg('There are no scorecards yet; a supervisor or admin can add one.');
      if (wantedCard) {
        const wanted = stored.find((s) => s.card.id === wantedCard);
        if (wanted) {
          cardSelect.value = wanted.card.id;
          renderBanner(wanted.card.name);
        } else if (any) {
          showSectionMsg(`The assigned scorecard “${wantedCard}” is not available any more; choose another one from the list or ask your lead.`);
        }
      }
    } catch (err) {
      cardSelect.textContent = '';
      cardSelect.append(el('option', { value: '', text: 'No scorecards' }));
      showSectionMsg(`Could not load the scorecards: ${err.message}`);
      throw err;
    }
  }

  // ---------------------------------------------------------------------------------------
  // The list

  const isOwnAgent = (ev) => role === 'agent' && !!agentId && ev.agent === agentId;
  const canResolve = (ev) =>
    isReviewer && ev.status === 'disputed' && (ev.reviewer === me || role === 'admin' || role === 'supervisor');
  const canDispute = (ev) => isOwnAgent(ev) && (ev.status === 'submitted' || ev.status === 'disputed');
  const canAcknowledge = (ev) => isOwnAgent(ev) && (ev.status === 'submitted' || ev.status === 'resolved');
  const isOwnDraft = (ev) => ev.status === 'draft' && ev.reviewer === me;

  function renderList() {
    list.textContent = '';
    if (!evaluations.length) {
      list.append(el('li', { class: 'eval-empty', text: 'No evaluations of this call yet.' }));
      return;
    }
    for (const ev of evaluations) list.append(renderEvaluation(ev));
  }

  function scoreParts(ev) {
    const parts = [];
    const s = ev.score;
    if (!s) {
      parts.push(el('span', { class: 'eval-score', text: ev.status === 'draft' ? 'not scored yet' : '—' }));
      return parts;
    }
    if (s.percent === null || s.percent === undefined) {
      parts.push(el('span', { class: 'eval-score', text: 'not scorable (all N/A)' }));
      return parts;
    }
    parts.push(el('span', { class: 'eval-score', dataset: { percent: s.percent }, text: fmtPercent(s.percent) }));
    parts.push(
      el('span', {
        class: `badge eval-passed ${s.passed ? 'pass' : 'fail'}`,
        text: s.passed ? 'pass' : 'fail',
      })
    );
    return parts;
  }

  function renderEvaluation(ev) {
    const card = cards.get(cardKey(ev.scorecard, ev.scorecard_version)) || null;
    const li = el('li', { class: 'eval', dataset: { evalId: ev.id, status: ev.status } });
    const details = el('details', { open: expanded.has(ev.id) });
    details.addEventListener('toggle', () => {
      if (details.open) expanded.add(ev.id);
      else expanded.delete(ev.id);
    });
    const failed = (ev.score && ev.score.failed_critical) || [];
    const summary = el(
      'summary',
      { class: 'eval-head' },
      el('span', { class: 'eval-card', text: `${card ? card.name : ev.scorecard} v${ev.scorecard_version}` }),
      el('span', { class: 'eval-reviewer', text: `by ${ev.reviewer}` }),
      el('span', { class: `badge eval-status st-${ev.status}`, text: ev.status }),
      scoreParts(ev),
      failed.length
        ? el('span', {
            class: 'eval-critical',
            text: `Failed critical: ${failed.map((qid) => (findQuestion(card, qid) || { text: qid }).text).join('; ')}`,
          })
        : null
    );
    details.append(summary);

    const body = el('div', { class: 'eval-body' });
    const facts = [`#${ev.id}`];
    if (ev.agent) facts.push(`agent ${ev.agent}`);
    if (ev.created_at_utc) facts.push(`created ${fmtDate(ev.created_at_utc)}`);
    if (ev.submitted_at_utc) facts.push(`submitted ${fmtDate(ev.submitted_at_utc)}`);
    body.append(el('p', { class: 'eval-facts', text: facts.join(' · ') }));
    if (cardErrors.has(ev.id)) {
      body.append(el('p', { class: 'error', text: `Could not load scorecard ${ev.scorecard} v${ev.scorecard_version}: ${cardErrors.get(ev.id)}` }));
    }
    if (ev.comment) body.append(el('p', { class: 'eval-comment' }, el('strong', { text: 'Comment: ' }), ev.comment));

    const actions = el('div', { class: 'eval-actions' });
    if (isOwnDraft(ev)) {
      actions.append(el('button', { type: 'button', dataset: { edit: ev.id }, text: 'Continue draft' }));
    }
    if (canAcknowledge(ev)) {
      actions.append(
        el('button', { type: 'button', class: 'primary', dataset: { ack: ev.id }, text: 'Acknowledge' }),
        ' ',
        el('span', { class: 'eval-hint', text: 'Confirms you have read this evaluation.' })
      );
    }
    if (actions.childNodes.length) body.append(actions);

    if (card && ev.answers && ev.answers.length) body.append(answersTable(ev, card));
    else if (ev.status !== 'draft') body.append(el('p', { class: 'eval-hint', text: 'No answers.' }));
    else body.append(el('p', { class: 'eval-hint', text: `Draft: ${(ev.answers || []).length} answer(s) saved so far.` }));

    if (ev.disputes && ev.disputes.length) body.append(disputeList(ev, card));
    details.append(body);
    li.append(details);
    return li;
  }

  function answersTable(ev, card) {
    const byQ = new Map((ev.answers || []).map((a) => [a.q, a]));
    const table = el('table', { class: 'eval-answers' },
      el('thead', {}, el('tr', {},
        el('th', { scope: 'col', text: 'Question' }),
        el('th', { scope: 'col', text: 'Answer' }),
        el('th', { scope: 'col', text: 'Heard at' }),
        el('th', { scope: 'col', text: 'Comment' }),
        el('th', { scope: 'col', text: '' }))));
    const secScores = new Map(((ev.score && ev.score.sections) || []).map((s) => [s.id, s]));
    for (const s of card.sections) {
      const tb = el('tbody', { dataset: { section: s.id } });
      const ss = secScores.get(s.id);
      let secText = '';
      if (ss) {
        secText = ss.percent === null || ss.percent === undefined ? 'all N/A' : fmtPercent(ss.percent);
        if (ss.zeroed_by) secText += ` — zeroed by “${(findQuestion(card, ss.zeroed_by) || { text: ss.zeroed_by }).text}”`;
      }
      tb.append(el('tr', { class: 'eval-sec' },
        el('th', { colspan: 5, scope: 'rowgroup' }, s.title,
          weightOf(s) !== 1 ? el('span', { class: 'eval-weight', text: ` ×${weightOf(s)}` }) : null,
          secText ? el('span', { class: 'eval-sec-score', text: ` · ${secText}` }) : null)));
      for (const q of s.questions) {
        const a = byQ.get(q.id);
        const open = (ev.disputes || []).find((d) => d.q === q.id && !d.decision);
        const tr = el('tr', { dataset: { q: q.id } });
        tr.append(
          el('td', { class: 'eval-qtext' }, q.text, criticalMark(q)),
          el('td', { class: `eval-ans${a && isFailing(q, a.value) ? ' failing' : ''}`, text: a ? describeAnswer(q, a.value) : '—' }),
          el('td', {}, a && typeof a.at_ms === 'number' ? momentLink(a.at_ms) : ''),
          el('td', { class: 'eval-qcomment', text: (a && a.comment) || '' }),
          el('td', { class: 'eval-qact' },
            open ? el('span', { class: 'badge st-disputed', text: 'disputed' }) : null,
            canDispute(ev) && a && !open
              ? el('button', { type: 'button', class: 'eval-dispute-open', dataset: { dispute: q.id }, text: 'Dispute' })
              : null)
        );
        tb.append(tr);
        if (canDispute(ev) && a && !open) {
          const rid = `eval-${ev.id}-reason-${q.id}`;
          tb.append(el('tr', { class: 'eval-dispute-row', hidden: true, dataset: { disputeRow: q.id } },
            el('td', { colspan: 5 },
              el('div', { class: 'eval-dispute-box' },
                el('label', { for: rid, text: `Why is the answer to “${q.text}” wrong?` }),
                el('textarea', { id: rid, rows: 3, maxlength: 2000, minlength: 10, dataset: { disputeReason: q.id },
                  placeholder: 'What did the reviewer miss? Say where in the call, e.g. “at 1:23 I …”' }),
                el('span', { class: 'eval-hint', text: 'At least 10 characters.' }),
                el('div', { class: 'eval-actions' },
                  el('button', { type: 'button', class: 'primary', dataset: { disputeSend: q.id }, text: 'Send dispute' }),
                  ' ',
                  el('button', { type: 'button', dataset: { disputeCancel: q.id }, text: 'Cancel' }))))));
        }
      }
      table.append(tb);
    }
    return table;
  }

  function criticalMark(q) {
    if (!q.critical) return null;
    return el('span', {
      class: 'eval-crit',
      title: q.critical === 'evaluation'
        ? 'A failing answer fails the whole evaluation (0 %)'
        : 'A failing answer zeroes this section',
      text: q.critical === 'evaluation' ? 'critical: evaluation' : 'critical: section',
    });
  }

  const DECISIONS = { upheld: 'upheld (answer stays)', changed: 'changed', accepted: 'accepted (full marks)' };

  function disputeList(ev, card) {
    const box = el('div', { class: 'eval-disputes' }, el('h4', { text: 'Disputes' }));
    const ul = el('ul', {});
    for (const d of ev.disputes) {
      const q = findQuestion(card, d.q);
      const li = el('li', { class: `eval-dispute${d.decision ? ' decided' : ' open'}`, dataset: { disputeId: d.id, q: d.q } });
      li.append(
        el('div', {}, el('strong', { text: q ? q.text : d.q }), ' — ',
          el('span', { class: 'eval-dispute-by', text: `${d.raised_by}${d.raised_at_utc ? `, ${fmtDate(d.raised_at_utc)}` : ''}: ` }),
          el('q', { class: 'eval-reason', text: d.reason })),
        d.decision
          ? el('div', { class: 'eval-decision' },
              el('span', { class: `badge dec-${d.decision}`, text: DECISIONS[d.decision] || d.decision }),
              d.decided_by ? ` by ${d.decided_by}` : '',
              d.decision_note ? el('span', { class: 'eval-note', text: ` — ${d.decision_note}` }) : null)
          : el('div', { class: 'eval-decision' }, el('span', { class: 'badge st-disputed', text: 'awaiting the reviewer' }))
      );
      if (!d.decision && canResolve(ev)) li.append(resolveControls(d, q));
      ul.append(li);
    }
    box.append(ul);
    return box;
  }

  function resolveControls(d, q) {
    const noteId = `eval-note-${d.id}`;
    const valId = `eval-value-${d.id}`;
    const select = el('select', { id: valId, dataset: { resolveValue: d.id } }, el('option', { value: '', text: 'new answer…' }));
    if (q) for (const c of choices(q)) select.append(el('option', { value: c.value, text: c.label }));
    const btn = (decision, label, cls) =>
      el('button', { type: 'button', class: cls || null, dataset: { resolve: d.id, decision }, text: label });
    return el('div', { class: 'eval-resolve' },
      el('label', { for: noteId, text: 'Note (optional)' }), ' ',
      el('input', { id: noteId, maxlength: 2000, dataset: { resolveNote: d.id }, placeholder: 'Why, for the agent' }), ' ',
      btn('upheld', 'Uphold'), ' ',
      el('label', { for: valId, class: 'eval-vh', text: 'New answer' }), select, btn('changed', 'Change'), ' ',
      btn('accepted', 'Accept', 'primary'));
  }

  // One click handler for the whole list.
  list.addEventListener('click', (e) => {
    const t = e.target.closest('button, a');
    if (!t || !list.contains(t)) return;
    const li = t.closest('li[data-eval-id]');
    const ev = li && evaluations.find((x) => String(x.id) === li.dataset.evalId);
    if (!ev) return;
    const ds = t.dataset;
    if (ds.edit) openForm(ev);
    else if (ds.ack) acknowledge(ev, li, t);
    else if (ds.dispute) toggleDispute(li, ds.dispute, true);
    else if (ds.disputeCancel) toggleDispute(li, ds.disputeCancel, false);
    else if (ds.disputeSend) sendDispute(ev, li, ds.disputeSend, t);
    else if (ds.resolve) resolve(ev, li, Number(ds.resolve), ds.decision, t);
  });

  // Moment links anywhere in the section: the hash change seeks too (player.js), but clicking
  // the same link twice fires no hashchange, so seek here as well.
  section.addEventListener('click', (e) => {
    const a = e.target.closest('a.eval-at');
    if (!a || !section.contains(a)) return;
    const p = player();
    if (p) p.seek(Number(a.dataset.atMs) / 1000);
  });

  const itemMsg = (li, text, kind) => {
    const body = li.querySelector('.eval-body') || li;
    say(body, 'eval-item-msg', text, kind, body.firstChild);
  };

  function toggleDispute(li, qid, show) {
    const row = li.querySelector(`tr[data-dispute-row="${CSS.escape(qid)}"]`);
    if (!row) return;
    row.hidden = !show;
    if (show) {
      const ta = row.querySelector('textarea');
      if (ta) ta.focus();
    }
  }

  async function runAction(li, btn, what, fn) {
    btn.disabled = true;
    itemMsg(li, '');
    try {
      await fn();
      return true;
    } catch (err) {
      btn.disabled = false;
      itemMsg(li, `Could not ${what}: ${err.message}`);
      return false;
    }
  }

  async function acknowledge(ev, li, btn) {
    const ok = await runAction(li, btn, 'acknowledge', () => api('POST', urls.action(ev.id, 'acknowledge')));
    if (ok) {
      expanded.add(ev.id);
      await refresh();
      showSectionMsg(`Evaluation #${ev.id} acknowledged.`, 'ok');
    }
  }

  async function sendDispute(ev, li, qid, btn) {
    const ta = li.querySelector(`textarea[data-dispute-reason="${CSS.escape(qid)}"]`);
    const reason = ta ? ta.value.trim() : '';
    if (reason.length < 10) {
      itemMsg(li, 'A dispute needs a reason of at least 10 characters: say what the reviewer missed.');
      if (ta) ta.focus();
      return;
    }
    const ok = await runAction(li, btn, 'send the dispute', () =>
      api('POST', urls.action(ev.id, 'dispute'), { q: qid, reason }));
    if (ok) {
      expanded.add(ev.id);
      await refresh();
      showSectionMsg(`Dispute sent; ${ev.reviewer} will decide it.`, 'ok');
    }
  }

  async function resolve(ev, li, disputeId, decision, btn) {
    const body = { dispute_id: disputeId, decision };
    const note = li.querySelector(`[data-resolve-note="${disputeId}"]`);
    if (note && note.value.trim()) body.note = note.value.trim();
    if (decision === 'changed') {
      const sel = li.querySelector(`[data-resolve-value="${disputeId}"]`);
      const v = sel ? sel.value : '';
      if (!v) {
        itemMsg(li, 'Choose the new answer next to “Change” first.');
        if (sel) sel.focus();
        return;
      }
      body.value = /^\d+$/.test(v) ? Number(v) : v;
    }
    const ok = await runAction(li, btn, 'decide the dispute', () => api('POST', urls.action(ev.id, 'resolve'), body));
    if (ok) {
      expanded.add(ev.id);
      await refresh();
      showSectionMsg(`Dispute ${decision}.`, 'ok');
    }
  }

  // ---------------------------------------------------------------------------------------
  // The draft form (reviewers)

  async function createEvaluation() {
    const slug = cardSelect.value;
    if (!slug) {
      showSectionMsg('Choose a scorecard first.');
      cardSelect.focus();
      return;
    }
    newButton.disabled = true;
    showSectionMsg('');
    try {
      const ev = await api('POST', urls.list, { scorecard: slug });
      expanded.delete(ev.id);
      await refresh();
      await openForm(ev);
    } catch (err) {
      showSectionMsg(`Could not start the evaluation: ${err.message}`);
    } finally {
      newButton.disabled = false;
    }
  }

  function closeForm() {
    formHost.textContent = '';
    form = null;
  }

  async function openForm(ev) {
    let card;
    try {
      card = await cardFor(ev.scorecard, ev.scorecard_version);
    } catch (err) {
      showSectionMsg(`Could not load scorecard ${ev.scorecard} v${ev.scorecard_version}: ${err.message}`);
      return;
    }
    closeForm();
    const state = { ev, card, at: new Map(), node: null };
    const node = el('form', { id: 'eval-form', class: 'eval-form', novalidate: '', dataset: { evalId: ev.id } });
    state.node = node;
    node.append(
      el('h3', { text: `${card.name} v${card.version} — draft #${ev.id}${ev.agent ? ` for ${ev.agent}` : ''}` }),
      card.description ? el('p', { class: 'eval-hint', text: card.description }) : null,
      el('p', { class: 'eval-hint', text: `Pass mark ${card.pass_mark_percent} %. Use “Mark now” to note the moment you heard what an answer is about.` })
    );
    for (const s of card.sections) {
      const fs = el('fieldset', { dataset: { section: s.id } },
        el('legend', {}, s.title,
          weightOf(s) !== 1 ? el('span', { class: 'eval-weight', text: ` ×${weightOf(s)}` }) : null,
          el('span', { class: 'eval-sec-preview', dataset: { section: s.id } })));
      for (const q of s.questions) fs.append(questionBlock(q));
      node.append(fs);
    }
    node.append(
      el('label', { class: 'eval-overall', for: 'eval-comment', text: 'Overall comment (optional)' }),
      el('textarea', { id: 'eval-comment', name: 'comment', rows: 3, maxlength: 4000 }),
      el('p', { id: 'eval-preview', class: 'eval-preview', 'aria-live': 'polite' }),
      el('div', { class: 'eval-actions' },
        el('button', { id: 'eval-save', type: 'button', text: 'Save draft' }), ' ',
        el('button', { id: 'eval-submit', type: 'button', class: 'primary', text: 'Submit' }), ' ',
        el('button', { id: 'eval-close', type: 'button', text: 'Close' }))
    );

    // Prefill from the saved draft.
    for (const a of ev.answers || []) {
      const f = node.elements.namedItem(`q:${a.q}`);
      if (f) f.value = String(a.value);
      const c = node.elements.namedItem(`comment:${a.q}`);
      if (c && a.comment) c.value = a.comment;
      if (typeof a.at_ms === 'number') setMoment(state, a.q, a.at_ms, node);
    }
    if (ev.comment) node.querySelector('#eval-comment').value = ev.comment;

    node.addEventListener('submit', (e) => e.preventDefault()); // Enter in a field must not submit
    node.addEventListener('change', (e) => {
      // Answering a question the server complained about takes its mark away.
      const b = e.target.closest('.eval-q.eval-invalid');
      if (b && e.target.name && e.target.name.startsWith('q:')) {
        b.classList.remove('eval-invalid');
        const g = b.querySelector('[aria-invalid]');
        if (g) g.removeAttribute('aria-invalid');
      }
      updatePreview(state);
    });
    node.addEventListener('input', () => updatePreview(state));
    node.addEventListener('click', (e) => {
      const b = e.target.closest('button');
      if (!b || !node.contains(b)) return;
      if (b.dataset.now) takeMoment(state, b.dataset.now);
      else if (b.dataset.atClear) setMoment(state, b.dataset.atClear, null);
      else if (b.id === 'eval-save') save(state);
      else if (b.id === 'eval-submit') submit(state);
      else if (b.id === 'eval-close') closeForm();
    });
    formHost.append(node);
    form = state;
    updatePreview(state);
  }

  function questionBlock(q) {
    const textId = `eval-q-${q.id}-text`;
    const block = el('div', { class: 'eval-q', id: `eval-q-${q.id}`, dataset: { q: q.id } });
    block.append(el('div', { class: 'eval-qtext', id: textId }, q.text, ' ', criticalMark(q)));
    if (q.help) block.append(el('p', { class: 'eval-help', text: q.help }));
    const opts = choices(q);
    let control;
    if (q.kind === 'points' && (q.max_points || 0) > 10) {
      control = el('select', { name: `q:${q.id}`, 'aria-labelledby': textId }, el('option', { value: '', text: '—' }));
      for (const c of opts) control.append(el('option', { value: c.value, text: c.label }));
    } else {
      control = el('div', { class: 'eval-choices', role: 'radiogroup', 'aria-labelledby': textId });
      for (const c of opts) {
        control.append(el('label', { title: c.title || null },
          el('input', { type: 'radio', name: `q:${q.id}`, value: c.value }), ` ${c.label}`));
      }
    }
    const row = el('div', { class: 'eval-qrow' }, control,
      el('span', { class: 'eval-moment' },
        el('button', { type: 'button', class: 'eval-now', dataset: { now: q.id }, title: 'Store the player’s current moment with this answer', text: 'Mark now' }),
        ' ',
        el('a', { class: 'eval-at', href: '#t=0', hidden: true, dataset: { at: q.id, atMs: 0 } }),
        el('button', { type: 'button', class: 'eval-at-clear', hidden: true, dataset: { atClear: q.id }, 'aria-label': 'Forget the moment', text: '×' })),
      el('input', { class: 'eval-qcomment', name: `comment:${q.id}`, maxlength: 2000, placeholder: 'Comment (optional)', 'aria-label': `Comment on: ${q.text}` }));
    block.append(row);
    return block;
  }

  function takeMoment(state, qid) {
    const p = player();
    if (!p) {
      say(state.node, 'eval-form-msg', 'The player is not available, so there is no current moment to store.');
      return;
    }
    setMoment(state, qid, Math.round((p.audio.currentTime || 0) * 1000));
  }

  function setMoment(state, qid, atMs, node = state.node) {
    if (atMs === null) state.at.delete(qid);
    else state.at.set(qid, atMs);
    const link = node.querySelector(`a[data-at="${CSS.escape(qid)}"]`);
    const clear = node.querySelector(`button[data-at-clear="${CSS.escape(qid)}"]`);
    if (!link) return;
    link.hidden = atMs === null;
    if (clear) clear.hidden = atMs === null;
    if (atMs !== null) {
      link.href = `#t=${atMs / 1000}`;
      link.dataset.atMs = String(atMs);
      link.textContent = fmtTime(atMs / 1000);
      link.title = `Heard at ${(atMs / 1000).toFixed(1)} s — play from here`;
    }
  }

  function readValue(node, q) {
    const f = node.elements.namedItem(`q:${q.id}`);
    const v = f ? f.value : '';
    if (!v) return null;
    if (v === 'yes' || v === 'no' || v === 'na') return v;
    return /^\d+$/.test(v) ? Number(v) : v;
  }

  function collect(state) {
    const answers = [];
    const values = new Map();
    let orphanMoments = 0;
    for (const q of questionsOf(state.card)) {
      const value = readValue(state.node, q);
      const c = state.node.elements.namedItem(`comment:${q.id}`);
      const comment = c ? c.value.trim() : '';
      if (value === null) {
        if (state.at.has(q.id) || comment) orphanMoments++;
        continue;
      }
      values.set(q.id, value);
      const a = { q: q.id, value };
      if (state.at.has(q.id)) a.at_ms = state.at.get(q.id);
      if (comment) a.comment = comment;
      answers.push(a);
    }
    const overall = state.node.querySelector('#eval-comment').value.trim();
    return { body: { answers, comment: overall || null }, values, orphanMoments };
  }

  function updatePreview(state) {
    if (form !== state) return;
    const { values } = collect(state);
    const s = computeScore(state.card, values);
    const out = state.node.querySelector('#eval-preview');
    for (const sp of state.node.querySelectorAll('.eval-sec-preview')) {
      const ss = s.sections.find((x) => x.id === sp.dataset.section);
      sp.textContent = ss && ss.percent !== null ? ` · preview ${fmtPercent(ss.percent)}${ss.zeroed_by ? ' (zeroed by a critical answer)' : ''}` : '';
    }
    if (s.answered === 0) {
      out.textContent = 'Preview: answer the questions to see a score.';
      delete out.dataset.percent;
      out.className = 'eval-preview';
      return;
    }
    const over = s.answered < s.questions ? ` over ${s.answered} of ${s.questions} answered questions` : '';
    if (s.percent === null) {
      out.textContent = `Preview${over}: not scorable (every answer is N/A).`;
      delete out.dataset.percent;
      out.className = 'eval-preview';
      return;
    }
    out.dataset.percent = String(s.percent);
    out.className = `eval-preview ${s.passed ? 'pass' : 'fail'}`;
    const crit = s.failed_critical.length
      ? ` Failed critical: ${s.failed_critical.map((qid) => findQuestion(state.card, qid).text).join('; ')}.`
      : '';
    out.textContent = `Preview${over}: ${fmtPercent(s.percent)} — ${s.passed ? 'pass' : 'fail'}.${crit} The server scores it on submit.`;
  }

  function clearInvalid(state) {
    for (const b of state.node.querySelectorAll('.eval-q.eval-invalid')) {
      b.classList.remove('eval-invalid');
      const g = b.querySelector('[aria-invalid]');
      if (g) g.removeAttribute('aria-invalid');
    }
  }

  // Marks the questions a server message names (`qid` in backticks, not after "section").
  function highlight(state, message) {
    const ids = new Set();
    const re = /(section\s+)?`([^`]+)`/g;
    let m;
    while ((m = re.exec(message)) !== null) if (!m[1]) ids.add(m[2]);
    let first = null;
    for (const q of questionsOf(state.card)) {
      if (!ids.has(q.id)) continue;
      const b = state.node.querySelector(`.eval-q[data-q="${CSS.escape(q.id)}"]`);
      if (!b) continue;
      b.classList.add('eval-invalid');
      const g = b.querySelector('.eval-choices, select');
      if (g) g.setAttribute('aria-invalid', 'true');
      if (!first) first = b;
    }
    if (first) first.scrollIntoView({ block: 'center' });
    return !!first;
  }

  function setBusy(state, busy) {
    for (const id of ['eval-save', 'eval-submit']) {
      const b = state.node.querySelector(`#${id}`);
      if (b) b.disabled = busy;
    }
  }

  const formMsg = (state, text, kind) => {
    const actions = state.node.querySelector('.eval-actions');
    say(state.node, 'eval-form-msg', text, kind, actions ? actions.nextSibling : null);
    const p = state.node.querySelector(':scope > .eval-form-msg');
    if (p) p.id = 'eval-form-msg';
  };

  async function saveAnswers(state) {
    const c = collect(state);
    await api('POST', urls.action(state.ev.id, 'answers'), c.body);
    return c;
  }

  async function save(state) {
    setBusy(state, true);
    clearInvalid(state);
    formMsg(state, '');
    try {
      const c = await saveAnswers(state);
      const total = questionsOf(state.card).length;
      let text = `Draft saved (${c.body.answers.length} of ${total} answered).`;
      if (c.orphanMoments) text += ` ${c.orphanMoments} unanswered question(s) have a moment or comment; those are kept only with an answer.`;
      formMsg(state, text, 'ok');
      refresh();
    } catch (err) {
      highlight(state, err.detail || err.message);
      formMsg(state, `Could not save the draft: ${err.message}`);
    } finally {
      if (form === state) setBusy(state, false);
    }
  }

  async function submit(state) {
    setBusy(state, true);
    clearInvalid(state);
    formMsg(state, '');
    let step = 'save the answers';
    try {
      await saveAnswers(state);
      step = 'submit';
      const ev = await api('POST', urls.action(state.ev.id, 'submit'));
      closeForm();
      expanded.add(ev.id);
      await refresh();
      const s = ev.score;
      const result = s && typeof s.percent === 'number'
        ? `${fmtPercent(s.percent)} — ${s.passed ? 'pass' : 'fail'}`
        : 'not scorable (every answer is N/A)';
      showSectionMsg(`Evaluation #${ev.id} submitted: ${result}.`, 'ok');
    } catch (err) {
      const named = highlight(state, err.detail || err.message);
      formMsg(state, `Could not ${step}: ${err.message}${named ? ' (the questions are marked)' : ''}`);
      setBusy(state, false);
    }
  }

  // ---------------------------------------------------------------------------------------
  // Start

  async function init() {
    const problems = [];
    const jobs = [reload().catch((err) => problems.push(`evaluations: ${err.message}`))];
    if (isReviewer) jobs.push(loadScorecards().catch((err) => problems.push(`scorecards: ${err.message}`)));
    await Promise.all(jobs);
    // Resume the newest own draft.
    const drafts = evaluations.filter(isOwnDraft);
    if (drafts.length && !form) await openForm(drafts[drafts.length - 1]);
    if (problems.length) document.body.dataset.evalError = problems.join('; ');
    document.body.dataset.evalReady = '1';
  }

  window.callrecEval = {
    evaluations: () => evaluations,
    reload,
  };

  init().catch((err) => {
    document.body.dataset.evalError = String(err && err.message ? err.message : err);
    document.body.dataset.evalReady = '1';
    showSectionMsg(`The evaluations could not be shown: ${document.body.dataset.evalError}`);
  });
})();
