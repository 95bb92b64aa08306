// compliance.js — script compliance on the call page: the call's spot checks against call
// scripts (list with per-step results), the spot-check form for reviewers (go to each step's
// window, mark present/absent/N/A with the moment heard, confirm transcript suggestions,
// autosave with a live preview, submit), and the transcript panel (segments that follow the
// playhead, find, import). Plain ES2020 in one function scope: no build step, no modules, no
// inline styles. Uses the shared helpers of common.js (window.callrec), which the page loads
// first.
//
// The server is authoritative: roles only decide which controls are drawn, the API checks them
// again, the outcome shown while marking is labelled a preview, and a transcript suggestion is
// only ever a place to listen — nothing here marks a step unless the reviewer presses a button.
//
// Hooks (stable, for people and for tests/it/browser.rs):
//   section#compliance[data-role]          rendered by the server (pages.rs `call`)
//     #check-msg                            section-wide message (p.error or p.flash)
//     ul#check-list                         the call's checks (other reviewers' drafts are not sent)
//       li.check[data-check-id][data-status][data-passed="1|0" once submitted]
//         .check-script .check-reviewer .badge.check-status  "Name vN", "by x", draft/submitted
//         .badge.check-result.pass|fail     "PASS" / "FAIL" (submitted checks)
//         button[data-open-check="<id>"]    "Continue" (own drafts)
//         ol.check-results > li.check-result[data-step][data-passed="1|0"][data-mark]
//           .check-result-mark  .check-result-text  a.check-at[data-at-ms] (seeks)  .check-problem
//     select#check-script, button#check-new "Start spot check" (reviewers)
//     form#check-form[data-check-id]        the open draft; [data-saving="1"] while a save runs
//       li.check-step[data-step="<key>"][data-mark][data-passed="1|0" once marked]
//         .check-window-text                "Window: first 30 s (0:00–0:30)", "anywhere", ...
//         button.jump                       seeks to the window start and plays
//         button.mark-present|.mark-absent|.mark-na [aria-pressed]  (pressing again clears)
//         button.take-moment                "Heard now": present at the playhead
//         span.moment > a.check-at          the moment heard (hidden when none); button.moment-clear
//         input.check-comment               optional comment
//         div.suggestion[data-at-ms] > a.check-at, button.confirm   transcript suggestion
//         p.check-problem                   the preview's problem;  p.check-step-msg  server error
//       #check-outcome[data-passed="1|0"]   "Preview: PASS" / "Preview: FAIL" and the problems
//       #check-save-state  #check-submit  #check-close  #check-form-msg
//   section#transcript
//     #transcript-msg                       message (import result, load error)
//     p.transcript-none                     when the call has no transcript
//     input#transcript-filter, #transcript-count
//     ol#transcript-list > li.seg[data-start-ms][data-end-ms]  (.current under the playhead,
//                                           .match for filter hits, <mark> around the hit)
//     form#transcript-upload > input#transcript-file, button#transcript-upload-btn (reviewers)
//   window.callrecCompliance = { checks(), reload(), flush(), form(), transcript(), reloadTranscript() }
//   body[data-compliance-ready="1"], body[data-compliance-error]   after the first load
//   body[data-transcript-ready="1"], body[data-transcript="none|loaded|error"]
(() => {
  'use strict';

  const root = document.getElementById('call');
  const section = document.getElementById('compliance');
  const trSection = document.getElementById('transcript');
  if (!root || (!section && !trSection)) return;

  const { el, say, metaContent, fmtTime, fmtDate, HttpError, api } = window.callrec;
  const me = metaContent('user');
  const roleHost = section || trSection || document.getElementById('evaluations');
  const role = (roleHost && roleHost.dataset.role) || '';
  const callId = root.dataset.callId || '';
  const callDurationMs = Number(root.dataset.durationMs) || 0;
  const cid = encodeURIComponent(callId);
  const REVIEWER_ROLES = ['admin', 'supervisor', 'qa'];
  const isReviewer = REVIEWER_ROLES.includes(role);
  const AUTOSAVE_MS = 600;
  const MAX_TRANSCRIPT_BYTES = 8 << 20;

  const urls = {
    scripts: '/api/scripts',
    checks: `/api/calls/${cid}/checks`,
    check: (id) => `/api/checks/${encodeURIComponent(id)}`,
    action: (id, what) => `/api/checks/${encodeURIComponent(id)}/${what}`,
    transcript: `/api/calls/${cid}/transcript`,
  };

  // ---------------------------------------------------------------------------------------
  // Small helpers

  const fmtMs = (ms) => fmtTime(ms / 1000);

  const isMs = (v) => typeof v === 'number' && Number.isFinite(v) && v >= 0;

  function momentLink(atMs, title) {
    return el('a', {
      class: 'check-at',
      href: `#t=${atMs / 1000}`,
      dataset: { atMs },
      title: title || 'Play from this moment',
      text: fmtMs(atMs),
    });
  }

  function ensureHeading(host, text) {
    if (!host.querySelector(':scope > h2')) host.prepend(el('h2', { text }));
  }

  // ---------------------------------------------------------------------------------------
  // The player (player.js, loaded before this script; tolerate it arriving later or not at all)

  const audio = document.getElementById('audio');

  function player() {
    const p = window.callrecPlayer;
    return p && p.audio ? p : null;
  }

  function whenPlayer(cb) {
    if (player()) {
      cb(player());
      return;
    }
    document.addEventListener('callrec:player-ready', () => cb(player()), { once: true });
  }

  function seekTo(seconds) {
    const p = player();
    if (p && typeof p.seek === 'function') p.seek(seconds);
    else if (audio) {
      try {
        audio.currentTime = seconds;
      } catch {
        // No metadata yet and no player to keep the target: nothing more to do.
      }
    }
  }

  function startPlaying() {
    const p = player();
    if (p && typeof p.play === 'function') p.play();
    else if (audio) {
      const r = audio.play();
      if (r && r.catch) r.catch(() => {});
    }
  }

  // The playhead in ms, clamped to the call; null when there is no player at all.
  function playheadMs() {
    const p = player();
    let ms = null;
    if (p && typeof p.currentMs === 'function') ms = p.currentMs();
    else if (p || audio) ms = Math.round(((p ? p.audio : audio).currentTime || 0) * 1000);
    if (ms === null || !Number.isFinite(ms)) return null;
    ms = Math.max(0, ms);
    return callDurationMs > 0 ? Math.min(ms, callDurationMs) : ms;
  }

  // ---------------------------------------------------------------------------------------
  // Scripts: words for a step

  const MARK_LABELS = { present: 'Present', absent: 'Absent', na: 'N/A' };
  const SPEAKER_WORDS = { agent: 'said by the agent', customer: 'said by the customer', any: 'said by anyone' };

  function stepText(script, key) {
    const s = ((script && script.steps) || []).find((x) => x.key === key);
    return s ? s.text : key;
  }

  // "first 30 s", "last 60 s, after: Offers further help", "anywhere".
  function windowWords(script, step) {
    const w = step.window || {};
    const parts = [];
    if (w.within_first_s) parts.push(`first ${w.within_first_s} s`);
    if (w.within_last_s) parts.push(`last ${w.within_last_s} s`);
    if (w.before) parts.push(`before: ${stepText(script, w.before)}`);
    if (w.after) parts.push(`after: ${stepText(script, w.after)}`);
    return parts.length ? parts.join(', ') : 'anywhere';
  }

  function windowOf(view, key) {
    const w = view && view.windows ? view.windows[key] : null;
    if (Array.isArray(w) && w.length === 2 && isMs(w[0]) && isMs(w[1])) return w;
    const o = view && view.outcome && (view.outcome.steps || []).find((s) => s.step === key);
    if (o && Array.isArray(o.window_ms) && o.window_ms.length === 2) return o.window_ms;
    return null;
  }

  // Step keys a server message names in backticks (`greeting`), as script.rs writes them.
  function namedSteps(script, message) {
    const keys = new Set(((script && script.steps) || []).map((s) => s.key));
    const found = [];
    const re = /`([^`]+)`/g;
    let m;
    while ((m = re.exec(message || '')) !== null) {
      if (keys.has(m[1]) && !found.includes(m[1])) found.push(m[1]);
    }
    return found;
  }

  function truncate(text, max) {
    const t = String(text || '').trim();
    return t.length > max ? `${t.slice(0, max - 1).trimEnd()}…` : t;
  }

  // ---------------------------------------------------------------------------------------
  // Compliance section

  let checks = [];
  let form = null; // the open draft's state, see openForm
  let refreshForm = () => Promise.resolve(); // set below when the section exists

  if (section) {
    ensureHeading(section, 'Script compliance');
    const list = el('ul', { id: 'check-list', 'aria-live': 'polite' });
    section.append(list);
    const showSectionMsg = (text, kind = 'error') => {
      const p = say(section, 'check-section-msg', text, kind, list);
      if (p) p.id = 'check-msg';
    };

    let scriptSelect = null;
    let newButton = null;
    const formHost = el('div', { id: 'check-form-host' });
    if (isReviewer) {
      scriptSelect = el('select', { id: 'check-script', name: 'script', disabled: true },
        el('option', { value: '', text: 'Loading scripts…' }));
      newButton = el('button', { id: 'check-new', type: 'button', disabled: true, text: 'Start spot check' });
      section.append(
        el('div', { class: 'check-new' },
          el('label', { for: 'check-script', text: 'Script' }), ' ', scriptSelect, ' ', newButton),
        formHost);
      newButton.addEventListener('click', createCheck);
    } else {
      section.append(formHost);
    }

    // -------------------------------------------------------------------------------------
    // Loading

    let loadSeq = 0;
    let current = Promise.resolve([]);

    // Loads and draws the list. Rejects (after showing the message) when it cannot be loaded.
    const reload = () => {
      const seq = ++loadSeq;
      const p = (async () => {
        const got = await api('GET', urls.checks);
        if (!Array.isArray(got)) throw new HttpError(0, 'the list of checks is not a list');
        if (seq !== loadSeq) return current; // a newer load is under way; it draws
        checks = got;
        renderList();
        showSectionMsg('');
        return got;
      })();
      current = p.catch((err) => {
        if (seq === loadSeq) showSectionMsg(`Could not load the spot checks: ${err.message}`);
        throw err;
      });
      return current;
    };
    const refresh = () => reload().catch(() => null);

    async function loadScripts() {
      try {
        const got = await api('GET', urls.scripts);
        if (!Array.isArray(got)) throw new HttpError(0, 'the list of scripts is not a list');
        // The newest version of each script: a new check always uses that one.
        const latest = new Map();
        for (const s of got) {
          const prev = latest.get(s.slug);
          if (!prev || Number(s.version) > Number(prev.version)) latest.set(s.slug, s);
        }
        const scripts = [...latest.values()].sort((a, b) => String(a.name).localeCompare(String(b.name)));
        scriptSelect.textContent = '';
        scriptSelect.append(el('option', { value: '', text: scripts.length ? 'Choose a script…' : 'No scripts' }));
        for (const s of scripts) {
          scriptSelect.append(el('option', { value: s.slug, text: `${s.name} (v${s.version})` }));
        }
        if (scripts.length === 1) scriptSelect.value = scripts[0].slug;
        const any = scripts.length > 0;
        scriptSelect.disabled = !any;
        newButton.disabled = !any;
        if (!any) {
          showSectionMsg('There are no call scripts yet; a supervisor or admin can add one (POST /api/scripts, as JSON or TOML).');
        }
      } catch (err) {
        scriptSelect.textContent = '';
        scriptSelect.append(el('option', { value: '', text: 'No scripts' }));
        showSectionMsg(`Could not load the call scripts: ${err.message}`);
        throw err;
      }
    }

    // -------------------------------------------------------------------------------------
    // The list

    const isOwnDraft = (v) => v.status === 'draft' && (!me || v.reviewer === me);

    function renderList() {
      list.textContent = '';
      if (!checks.length) {
        list.append(el('li', {
          class: 'check-empty',
          text: isReviewer
            ? 'No spot checks of this call yet. Choose a script below and start one.'
            : 'No spot checks of this call yet.',
        }));
        return;
      }
      for (const v of checks) list.append(renderCheck(v));
    }

    function renderCheck(v) {
      const script = v.script || { name: v.script_slug, steps: [] };
      const submitted = v.status === 'submitted';
      const passed = submitted && typeof v.passed === 'boolean' ? v.passed : null;
      const li = el('li', {
        class: 'check',
        dataset: { checkId: v.id, status: v.status, passed: passed === null ? null : passed ? '1' : '0' },
      });
      const editing = form && String(form.id) === String(v.id);
      li.append(el('div', { class: 'check-head' },
        el('span', { class: 'check-script', text: `${script.name || v.script_slug} v${v.script_version}` }),
        el('span', { class: 'check-reviewer', text: `by ${v.reviewer}` }),
        el('span', { class: `badge check-status st-${v.status}`, text: v.status }),
        passed === null ? null : el('span', { class: `badge check-result ${passed ? 'pass' : 'fail'}`, text: passed ? 'PASS' : 'FAIL' }),
        isReviewer && isOwnDraft(v)
          ? editing
            ? el('span', { class: 'check-hint', text: 'open below' })
            : el('button', { type: 'button', dataset: { openCheck: v.id }, text: 'Continue' })
          : null));

      const facts = [`#${v.id}`];
      if (v.agent) facts.push(`agent ${v.agent}`);
      if (v.created_at_utc) facts.push(`started ${fmtDate(v.created_at_utc)}`);
      if (v.submitted_at_utc) facts.push(`submitted ${fmtDate(v.submitted_at_utc)}`);
      li.append(el('p', { class: 'check-facts', text: facts.join(' · ') }));

      // A draft is only counted here; its marks are in the form (drafts are their reviewer's).
      const o = v.outcome;
      if (submitted && o && Array.isArray(o.steps) && o.steps.length) li.append(resultList(v, o));
      else if (!submitted) {
        li.append(el('p', { class: 'check-hint', text: `Draft: ${(v.marks || []).length} of ${(script.steps || []).length} steps marked so far.` }));
      }
      return li;
    }

    function resultList(v, o) {
      const comments = new Map((v.marks || []).map((m) => [m.step, m.comment || '']));
      const ol = el('ol', { class: 'check-results' });
      for (const s of o.steps) {
        const mark = s.mark || '';
        ol.append(el('li', {
          class: 'check-result',
          dataset: { step: s.step, passed: s.passed ? '1' : '0', mark },
        },
        el('span', { class: `badge check-result-mark mark-${mark || 'none'}`, text: mark ? MARK_LABELS[mark] || mark : 'not marked' }),
        ' ',
        el('span', { class: 'check-result-text', text: s.text }),
        s.required ? null : [' ', el('span', { class: 'check-req opt', text: 'optional' })],
        isMs(s.at_ms) ? [el('span', { class: 'check-heard', text: ' heard at ' }), momentLink(s.at_ms)] : null,
        comments.get(s.step) ? el('span', { class: 'check-comment-text', text: ` — “${comments.get(s.step)}”` }) : null,
        s.problem ? el('p', { class: 'check-problem', text: s.problem[0].toUpperCase() + s.problem.slice(1) + (s.required ? '.' : ' (optional step: does not fail the check).') }) : null));
      }
      return ol;
    }

    // One check changed (a saved draft): swap its entry without redrawing the others.
    function replaceInList(v) {
      const i = checks.findIndex((x) => String(x.id) === String(v.id));
      if (i < 0) return;
      checks[i] = v;
      const old = list.querySelector(`li.check[data-check-id="${CSS.escape(String(v.id))}"]`);
      if (old) old.replaceWith(renderCheck(v));
    }

    list.addEventListener('click', (e) => {
      const b = e.target.closest('button[data-open-check]');
      if (!b || !list.contains(b)) return;
      const v = checks.find((x) => String(x.id) === b.dataset.openCheck);
      if (v) openForm(v);
    });

    // Moment links anywhere in the section: the hash change seeks too (player.js), but clicking
    // the same link twice fires no hashchange, so seek here as well.
    section.addEventListener('click', (e) => {
      const a = e.target.closest('a.check-at');
      if (!a || !section.contains(a)) return;
      seekTo(Number(a.dataset.atMs) / 1000);
    });

    // -------------------------------------------------------------------------------------
    // The draft form (reviewers)

    async function createCheck() {
      const slug = scriptSelect.value;
      if (!slug) {
        showSectionMsg('Choose a script first.');
        scriptSelect.focus();
        return;
      }
      newButton.disabled = true;
      showSectionMsg('');
      try {
        if (!(await closeForm())) return;
        const v = await api('POST', urls.checks, { script: slug });
        await refresh();
        openForm(v);
      } catch (err) {
        showSectionMsg(`Could not start the spot check: ${err.message}`);
      } finally {
        newButton.disabled = false;
      }
    }

    // Saves what is pending and removes the form. False (form kept, message shown) when the
    // marks could not be saved.
    async function closeForm() {
      const state = form;
      if (!state) return true;
      try {
        await flush(state);
      } catch (err) {
        formMsg(state, `Could not save the marks, so the form stays open: ${err.message}`);
        return false;
      }
      if (form === state) {
        clearTimeout(state.timer);
        formHost.textContent = '';
        form = null;
      }
      return true;
    }

    function dropForm() {
      if (form) clearTimeout(form.timer);
      formHost.textContent = '';
      form = null;
    }

    async function openForm(v) {
      if (form && String(form.id) === String(v.id)) {
        form.node.scrollIntoView({ block: 'start' });
        return;
      }
      if (!(await closeForm())) return;
      const script = v.script || { name: v.script_slug, steps: [] };
      const state = {
        id: v.id,
        view: v,
        script,
        marks: new Map(), // step key -> {mark: 'present'|'absent'|'na'|null, at_ms: number|null, comment}
        node: null,
        editSeq: 0,
        dirty: false,
        inflight: null,
        timer: null,
        lastError: null,
      };
      for (const m of v.marks || []) {
        state.marks.set(m.step, { mark: m.mark || null, at_ms: isMs(m.at_ms) ? m.at_ms : null, comment: m.comment || '' });
      }
      const node = el('form', { id: 'check-form', class: 'check-form', novalidate: '', dataset: { checkId: v.id } });
      state.node = node;
      node.append(
        el('h3', { text: `${script.name} v${v.script_version} — spot check #${v.id}${v.agent ? ` of ${v.agent}` : ''}` }),
        script.description ? el('p', { class: 'check-hint', text: script.description }) : null,
        el('p', { class: 'check-hint', text: 'For each step: “Go to window” plays the part of the call where it belongs; press “Heard now” when you hear it, or Absent / N/A. Marks are saved as you go.' })
      );
      const ol = el('ol', { class: 'check-steps' });
      for (const step of script.steps || []) ol.append(stepBlock(state, step));
      node.append(
        ol,
        el('div', { id: 'check-outcome', class: 'check-outcome', 'aria-live': 'polite' }),
        el('div', { class: 'check-actions' },
          el('button', { id: 'check-submit', type: 'button', class: 'primary', text: 'Submit' }), ' ',
          el('button', { id: 'check-close', type: 'button', text: 'Close' }), ' ',
          el('span', { id: 'check-save-state', class: 'check-save-state', 'aria-live': 'polite' }))
      );

      node.addEventListener('submit', (e) => e.preventDefault()); // Enter in a comment must not submit
      node.addEventListener('click', (e) => onFormClick(state, e));
      node.addEventListener('input', (e) => {
        const input = e.target.closest('input.check-comment');
        if (!input) return;
        const li = input.closest('li.check-step');
        if (!li) return;
        entry(state, li.dataset.step).comment = input.value;
        changed(state, false);
      });

      formHost.textContent = '';
      formHost.append(node);
      form = state;
      for (const step of script.steps || []) renderStep(state, step.key);
      applyView(state, v, true);
      renderList(); // the list's "Continue" becomes "open below"
      setSaveState(state, (v.marks || []).length ? 'All marks saved.' : '');
    }

    function entry(state, key) {
      if (!state.marks.has(key)) state.marks.set(key, { mark: null, at_ms: null, comment: '' });
      return state.marks.get(key);
    }

    function stepBlock(state, step) {
      const key = step.key;
      const textId = `check-step-${key}-text`;
      const mb = (mark, label) =>
        el('button', { type: 'button', class: `mark mark-${mark}`, 'aria-pressed': 'false', dataset: { mark }, text: label });
      return el('li', { class: 'check-step', id: `check-step-${key}`, dataset: { step: key, required: step.required === false ? '0' : '1' } },
        el('div', { class: 'check-step-head' },
          el('span', { class: 'check-step-text', id: textId, text: step.text }), ' ',
          el('span', { class: `check-req ${step.required === false ? 'opt' : 'req'}`, text: step.required === false ? 'optional' : 'required' }), ' ',
          step.speaker && SPEAKER_WORDS[step.speaker] ? el('span', { class: 'check-speaker', text: SPEAKER_WORDS[step.speaker] }) : null),
        el('div', { class: 'check-window' },
          el('span', { class: 'check-window-text' }), ' ',
          el('button', { type: 'button', class: 'jump', title: 'Play from the start of this step’s window', text: 'Go to window' })),
        el('div', { class: 'check-mark-row' },
          el('span', { class: 'check-marks', role: 'group', 'aria-labelledby': textId },
            mb('present', 'Present'), mb('absent', 'Absent'), mb('na', 'N/A')),
          el('button', { type: 'button', class: 'take-moment', title: 'Mark present at the player’s current moment', text: 'Heard now' }),
          el('span', { class: 'moment', hidden: true }),
          el('button', { type: 'button', class: 'moment-clear', hidden: true, 'aria-label': `Forget the moment for: ${step.text}`, text: '×' }),
          el('input', { class: 'check-comment', maxlength: 2000, placeholder: 'Comment (optional)', 'aria-label': `Comment on: ${step.text}` })),
        el('div', { class: 'check-suggestions' }),
        el('p', { class: 'check-problem', hidden: true }));
    }

    const stepNode = (state, key) => state.node.querySelector(`li.check-step[data-step="${CSS.escape(key)}"]`);

    // Draws one step's local state: pressed mark, moment, comment, confirmed suggestions.
    function renderStep(state, key) {
      const li = stepNode(state, key);
      if (!li) return;
      const m = state.marks.get(key) || { mark: null, at_ms: null, comment: '' };
      li.dataset.mark = m.mark || '';
      for (const b of li.querySelectorAll('.check-marks button')) {
        b.setAttribute('aria-pressed', String(b.dataset.mark === m.mark));
      }
      const moment = li.querySelector('.moment');
      const clear = li.querySelector('.moment-clear');
      moment.textContent = '';
      moment.hidden = !isMs(m.at_ms);
      clear.hidden = !isMs(m.at_ms);
      if (isMs(m.at_ms)) moment.append(momentLink(m.at_ms, `Heard at ${(m.at_ms / 1000).toFixed(1)} s — play from here`));
      const input = li.querySelector('input.check-comment');
      if (input.value !== m.comment && document.activeElement !== input) input.value = m.comment || '';
      for (const s of li.querySelectorAll('.suggestion')) {
        const done = m.mark === 'present' && m.at_ms === Number(s.dataset.atMs);
        s.classList.toggle('confirmed', done);
        const b = s.querySelector('button.confirm');
        if (b) {
          b.disabled = done;
          b.textContent = done ? 'Confirmed' : 'Confirm';
        }
      }
    }

    // Takes what the server sent: windows, suggestions and (when it is for the newest edit)
    // the preview outcome. Local marks are never overwritten by it.
    function applyView(state, v, withOutcome) {
      state.view = { ...state.view, windows: v.windows, suggestions: v.suggestions, ...(withOutcome ? { outcome: v.outcome } : {}) };
      for (const step of state.script.steps || []) {
        const li = stepNode(state, step.key);
        if (!li) continue;
        const w = windowOf(state.view, step.key);
        const words = windowWords(state.script, step);
        const timed = step.window && (step.window.within_first_s || step.window.within_last_s);
        li.querySelector('.check-window-text').textContent =
          `Window: ${words}${w && timed ? ` (${fmtMs(w[0])}–${fmtMs(w[1])})` : ''}`;
        const jump = li.querySelector('button.jump');
        jump.disabled = !w;
        if (w) jump.dataset.startMs = String(w[0]);
        renderSuggestions(state, step, li);
        renderStep(state, step.key);
      }
      if (withOutcome) renderOutcome(state);
    }

    function renderSuggestions(state, step, li) {
      const host = li.querySelector('.check-suggestions');
      host.textContent = '';
      for (const s of (state.view.suggestions || []).filter((x) => x.step === step.key && isMs(x.at_ms))) {
        host.append(el('div', { class: 'suggestion', dataset: { atMs: s.at_ms, step: step.key }, title: s.speaker ? `Said by: ${s.speaker}` : null },
          'Transcript suggests ', momentLink(s.at_ms, 'Listen to the suggested moment'), ': ',
          el('span', { class: 'suggestion-text', text: `“${truncate(s.text, 160)}”` }),
          s.phrase ? ` (${s.phrase})` : '', ' ',
          el('button', { type: 'button', class: 'confirm', title: 'Listen first; this marks the step present at the suggested moment', text: 'Confirm' })));
      }
    }

    function renderOutcome(state) {
      const out = state.node.querySelector('#check-outcome');
      const o = state.view.outcome;
      out.textContent = '';
      for (const step of state.script.steps || []) {
        const li = stepNode(state, step.key);
        const r = o && (o.steps || []).find((s) => s.step === step.key);
        const p = li && li.querySelector('.check-problem');
        if (!li) continue;
        // Only marked steps are judged in the preview; an unmarked one is just not done yet.
        if (r && r.mark) {
          li.dataset.passed = r.passed ? '1' : '0';
          p.hidden = !r.problem;
          p.textContent = r.problem ? `Preview: ${r.problem}${r.required ? '' : ' (optional step: does not fail the check)'}` : '';
        } else {
          delete li.dataset.passed;
          p.hidden = true;
          p.textContent = '';
        }
      }
      if (!o || !Array.isArray(o.steps)) {
        delete out.dataset.passed;
        out.className = 'check-outcome';
        out.append('Preview: mark the steps to see the result.');
        return;
      }
      out.dataset.passed = o.passed ? '1' : '0';
      out.className = `check-outcome ${o.passed ? 'pass' : 'fail'}`;
      out.append(el('strong', { text: `Preview: ${o.passed ? 'PASS' : 'FAIL'}` }));
      const unmarked = o.steps.filter((s) => !s.mark).length;
      if (unmarked) out.append(` — ${unmarked} of ${o.steps.length} step${o.steps.length === 1 ? '' : 's'} not marked yet`);
      const problems = o.steps.filter((s) => s.mark && s.problem);
      if (problems.length) {
        out.append(el('ul', { class: 'check-problems' },
          problems.map((s) => el('li', { dataset: { step: s.step } },
            el('strong', { text: s.text }), `: ${s.problem}${s.required ? '' : ' (optional)'}`))));
      }
    }

    function onFormClick(state, e) {
      const b = e.target.closest('button');
      if (!b || !state.node.contains(b)) return;
      if (b.id === 'check-submit') return void submit(state);
      if (b.id === 'check-close') {
        closeForm().then((ok) => {
          if (ok) renderList();
        });
        return;
      }
      const li = b.closest('li.check-step');
      if (!li) return;
      const key = li.dataset.step;
      stepMsg(state, key, '');
      if (b.dataset.mark) {
        const m = entry(state, key);
        m.mark = m.mark === b.dataset.mark ? null : b.dataset.mark;
        if (m.mark === 'present' && !isMs(m.at_ms)) {
          stepMsg(state, key, 'Present needs the moment it was heard: play to it and press “Heard now” (or confirm a suggestion). Saved once it has one.', 'hint');
        }
        renderStep(state, key);
        changed(state, true);
      } else if (b.classList.contains('take-moment')) {
        const ms = playheadMs();
        if (ms === null) {
          stepMsg(state, key, 'The player is not available, so there is no current moment to take.');
          return;
        }
        const m = entry(state, key);
        m.mark = 'present';
        m.at_ms = ms;
        renderStep(state, key);
        changed(state, true);
      } else if (b.classList.contains('moment-clear')) {
        const m = entry(state, key);
        m.at_ms = null;
        if (m.mark === 'present') {
          stepMsg(state, key, 'Present needs the moment it was heard: press “Heard now” at that moment, or mark the step another way.', 'hint');
        }
        renderStep(state, key);
        changed(state, true);
      } else if (b.classList.contains('confirm')) {
        const s = b.closest('.suggestion');
        const at = s ? Number(s.dataset.atMs) : NaN;
        if (!isMs(at)) return;
        const m = entry(state, key);
        m.mark = 'present';
        m.at_ms = at;
        renderStep(state, key);
        changed(state, true);
      } else if (b.classList.contains('jump')) {
        const start = Number(b.dataset.startMs);
        if (!isMs(start)) return;
        seekTo(start / 1000);
        startPlaying();
      }
    }

    // A step's own message: server errors (p.check-step-msg.error) or hints (.flash-free note).
    function stepMsg(state, key, text, kind = 'error') {
      const li = stepNode(state, key);
      if (!li) return;
      const p = say(li, 'check-step-msg', text, kind === 'hint' ? 'ok' : 'error');
      li.classList.toggle('check-invalid', !!text && kind !== 'hint');
      if (p && kind === 'hint') {
        p.className = 'check-step-msg check-step-hint';
        p.setAttribute('role', 'status');
      }
    }

    function clearStepErrors(state) {
      for (const li of state.node.querySelectorAll('li.check-step.check-invalid')) stepMsg(state, li.dataset.step, '');
    }

    function formMsg(state, text, kind) {
      const actions = state.node.querySelector('.check-actions');
      const p = say(state.node, 'check-form-msg', text, kind, actions ? actions.nextSibling : null);
      if (p) p.id = 'check-form-msg';
    }

    function setSaveState(state, text) {
      const s = state.node.querySelector('#check-save-state');
      if (s) s.textContent = text;
    }

    // Shows a server message next to each step it names (true), else leaves it to the caller.
    function showAtSteps(state, message) {
      const keys = namedSteps(state.script, message);
      for (const k of keys) stepMsg(state, k, message);
      const first = keys.length ? stepNode(state, keys[0]) : null;
      if (first) first.scrollIntoView({ block: 'center' });
      return keys.length;
    }

    // ---- Saving: marks are autosaved (debounced for typing, at once for buttons); one save
    // runs at a time and edits made meanwhile are saved right after it.

    // What is sent: every marked step; a present mark still waiting for its moment is left out
    // (the server would refuse the whole list for it).
    function collectMarks(state) {
      const out = [];
      for (const step of state.script.steps || []) {
        const m = state.marks.get(step.key);
        if (!m || !m.mark) continue;
        if (m.mark === 'present' && !isMs(m.at_ms)) continue;
        out.push({ step: step.key, mark: m.mark, at_ms: isMs(m.at_ms) ? m.at_ms : null, comment: (m.comment || '').trim() });
      }
      return out;
    }

    function changed(state, immediate) {
      state.dirty = true;
      state.editSeq++;
      clearTimeout(state.timer);
      state.timer = null;
      setSaveState(state, 'Unsaved changes…');
      if (immediate) autosave(state);
      else state.timer = setTimeout(() => autosave(state), AUTOSAVE_MS);
    }

    function autosave(state) {
      flush(state).catch(() => {
        // Shown by saveOnce; the next edit or Submit tries again.
      });
    }

    async function flush(state) {
      clearTimeout(state.timer);
      state.timer = null;
      while (state.inflight) {
        try {
          await state.inflight;
        } catch {
          // Its error is shown; what matters is whether our edits still need saving.
        }
      }
      if (!state.dirty) {
        if (state.lastError) throw state.lastError;
        return;
      }
      state.dirty = false;
      const p = saveOnce(state, state.editSeq);
      state.inflight = p;
      try {
        await p;
        state.lastError = null;
      } catch (err) {
        state.lastError = err;
        // A refusal (4xx) stays refused until something changes; anything else is retried.
        if (!(err.status >= 400 && err.status < 500)) state.dirty = true;
        throw err;
      } finally {
        if (state.inflight === p) state.inflight = null;
      }
      if (state.dirty && form === state) await flush(state);
    }

    async function saveOnce(state, seq) {
      state.node.dataset.saving = '1';
      setSaveState(state, 'Saving…');
      try {
        const v = await api('POST', urls.action(state.id, 'marks'), { marks: collectMarks(state) });
        if (form !== state) return v;
        // Server errors from earlier saves are answered; local hints (present without a moment) stay.
        for (const li of state.node.querySelectorAll('li.check-step.check-invalid')) stepMsg(state, li.dataset.step, '');
        formMsg(state, '');
        applyView(state, v, seq === state.editSeq);
        replaceInList(v);
        const waiting = [...state.marks.values()].filter((m) => m.mark === 'present' && !isMs(m.at_ms)).length;
        const orphans = [...state.marks.values()].filter((m) => !m.mark && (m.comment || '').trim()).length;
        let text = seq === state.editSeq ? 'All marks saved.' : 'Saving…';
        if (waiting) text += ` ${waiting} present mark(s) wait for their moment.`;
        if (orphans) text += ` ${orphans} comment(s) on unmarked steps are kept only with a mark.`;
        setSaveState(state, text);
        state.node.dataset.savedSeq = String(seq);
        return v;
      } catch (err) {
        if (form === state) {
          setSaveState(state, 'Not saved.');
          showAtSteps(state, err.detail || err.message);
          formMsg(state, `Could not save the marks: ${err.message}`);
        }
        throw err;
      } finally {
        delete state.node.dataset.saving;
      }
    }

    function setBusy(state, busy) {
      for (const id of ['check-submit', 'check-close']) {
        const b = state.node.querySelector(`#${id}`);
        if (b) b.disabled = busy;
      }
    }

    async function submit(state) {
      setBusy(state, true);
      formMsg(state, '');
      clearStepErrors(state);
      const waiting = (state.script.steps || []).filter((s) => {
        const m = state.marks.get(s.key);
        return m && m.mark === 'present' && !isMs(m.at_ms);
      });
      if (waiting.length) {
        for (const s of waiting) stepMsg(state, s.key, 'Marked present without the moment it was heard: press “Heard now” at that moment, or mark it absent or N/A.');
        stepNode(state, waiting[0].key).scrollIntoView({ block: 'center' });
        formMsg(state, `Not submitted: ${waiting.length} step${waiting.length === 1 ? ' is' : 's are'} marked present without a moment (marked above).`);
        setBusy(state, false);
        return;
      }
      try {
        await flush(state);
      } catch (err) {
        showAtSteps(state, err.detail || err.message);
        formMsg(state, `Could not save the marks, so nothing was submitted: ${err.message}`);
        setBusy(state, false);
        return;
      }
      let v;
      try {
        v = await api('POST', urls.action(state.id, 'submit'));
      } catch (err) {
        const n = showAtSteps(state, err.detail || err.message);
        formMsg(state, n
          ? `Not submitted: ${n} step${n === 1 ? ' needs' : 's need'} attention (the message is next to ${n === 1 ? 'it' : 'each'}).`
          : `Could not submit: ${err.message}`);
        setBusy(state, false);
        return;
      }
      if (form === state) dropForm();
      await refresh();
      const result = typeof v.passed === 'boolean' ? (v.passed ? 'PASS' : 'FAIL') : 'submitted';
      showSectionMsg(`Spot check #${v.id} submitted: ${result}.`, 'ok');
      const li = list.querySelector(`li[data-check-id="${CSS.escape(String(v.id))}"]`);
      if (li) li.scrollIntoView({ block: 'nearest' });
    }

    // After a transcript import: new suggestions for the open draft, and the list again.
    refreshForm = async () => {
      await refresh();
      const state = form;
      if (!state) return;
      try {
        const v = await api('GET', urls.check(state.id));
        if (form === state) applyView(state, v, false);
      } catch (err) {
        if (form === state) formMsg(state, `Could not load the new transcript suggestions: ${err.message}`);
      }
    };

    // Leaving the page: a pending debounce is saved now (best effort; the browser may cut it).
    window.addEventListener('pagehide', () => {
      if (form && form.dirty) autosave(form);
    });

    // -------------------------------------------------------------------------------------
    // Start

    async function init() {
      const problems = [];
      const jobs = [reload().catch((err) => problems.push(`checks: ${err.message}`))];
      if (isReviewer) jobs.push(loadScripts().catch((err) => problems.push(`scripts: ${err.message}`)));
      await Promise.all(jobs);
      if (isReviewer && !form) {
        const drafts = checks.filter(isOwnDraft);
        if (drafts.length) await openForm(drafts[drafts.length - 1]);
      }
      if (problems.length) document.body.dataset.complianceError = problems.join('; ');
      document.body.dataset.complianceReady = '1';
    }

    window.callrecCompliance = {
      checks: () => checks,
      reload,
      flush: () => (form ? flush(form) : Promise.resolve()),
      form: () => (form ? { id: form.id, view: form.view, marks: collectMarks(form) } : null),
      transcript: () => null,
      reloadTranscript: () => Promise.resolve(),
    };

    init().catch((err) => {
      document.body.dataset.complianceError = String(err && err.message ? err.message : err);
      document.body.dataset.complianceReady = '1';
      showSectionMsg(`The spot checks could not be shown: ${document.body.dataset.complianceError}`);
    });
  }

  // ---------------------------------------------------------------------------------------
  // Transcript section

  if (trSection) {
    ensureHeading(trSection, 'Transcript');
    const body = el('div', { id: 'transcript-body' });
    trSection.append(body);
    const showMsg = (text, kind = 'error') => {
      const p = say(trSection, 'transcript-section-msg', text, kind, body);
      if (p) p.id = 'transcript-msg';
    };

    let segments = [];
    let segNodes = [];
    let listEl = null;
    let countEl = null;
    let currentIdx = -1;

    const speakerName = (s) => {
      if (!s) return '';
      if (s === 'agent') return 'Agent';
      if (s === 'customer') return 'Customer';
      return s.charAt(0).toUpperCase() + s.slice(1);
    };

    async function loadTranscript() {
      let t;
      try {
        t = await api('GET', urls.transcript);
      } catch (err) {
        segments = [];
        if (err.status === 404) {
          renderNone();
          document.body.dataset.transcript = 'none';
        } else {
          body.textContent = '';
          listEl = null;
          showMsg(`Could not load the transcript: ${err.message}`);
          if (isReviewer) body.append(uploadForm(false));
          document.body.dataset.transcript = 'error';
        }
        return null;
      }
      if (t === null) {
        // 204: the call has no transcript (not an error, so no console noise either).
        segments = [];
        renderNone();
        document.body.dataset.transcript = 'none';
        return null;
      }
      const got = Array.isArray(t.segments) ? t.segments : [];
      segments = got
        .filter((s) => s && isMs(Number(s.start_ms)))
        .map((s) => ({
          start_ms: Number(s.start_ms),
          end_ms: Math.max(Number(s.start_ms), Number(s.end_ms) || 0),
          speaker: s.speaker ? String(s.speaker) : '',
          text: s.text == null ? '' : String(s.text),
        }))
        .sort((a, b) => a.start_ms - b.start_ms || a.end_ms - b.end_ms);
      renderTranscript(t);
      document.body.dataset.transcript = 'loaded';
      return t;
    }

    function renderNone() {
      body.textContent = '';
      listEl = null;
      segNodes = [];
      currentIdx = -1;
      body.append(el('p', { class: 'transcript-none' },
        'No transcript. Import one with ',
        el('code', { text: `callrec transcript import ${callId} <file.vtt|json>` }),
        ' or POST it to ',
        el('code', { text: `/api/calls/${callId}/transcript` }),
        '.'));
      if (isReviewer) body.append(uploadForm(false));
    }

    function renderTranscript(t) {
      body.textContent = '';
      currentIdx = -1;
      const facts = [`${segments.length} segment${segments.length === 1 ? '' : 's'}`];
      if (t.format) facts.push(String(t.format));
      if (t.source) facts.push(`from ${t.source}`);
      if (t.imported_by) facts.push(`imported by ${t.imported_by}`);
      if (t.imported_at_utc) facts.push(fmtDate(t.imported_at_utc));
      const filter = el('input', {
        id: 'transcript-filter',
        type: 'search',
        placeholder: 'Find in transcript',
        'aria-label': 'Find in transcript',
        autocomplete: 'off',
      });
      countEl = el('span', { id: 'transcript-count', class: 'transcript-count', 'aria-live': 'polite' });
      listEl = el('ol', { id: 'transcript-list', class: 'transcript-list' });
      segNodes = segments.map((s, i) => {
        const li = el('li', { class: 'seg', dataset: { startMs: s.start_ms, endMs: s.end_ms, speaker: s.speaker || null, i } },
          el('a', { class: 'seg-at', href: `#t=${s.start_ms / 1000}`, text: fmtMs(s.start_ms) }), ' ',
          s.speaker ? el('span', { class: `seg-speaker sp-${s.speaker.replace(/[^a-z0-9_-]/gi, '')}`, text: `${speakerName(s.speaker)}:` }) : null,
          s.speaker ? ' ' : null,
          el('span', { class: 'seg-text', text: s.text }));
        listEl.append(li);
        return li;
      });
      body.append(
        el('p', { class: 'transcript-facts', text: facts.join(' · ') }),
        el('div', { class: 'transcript-tools' }, filter, ' ', countEl),
        listEl,
        el('p', { class: 'transcript-hint', text: 'Click a line to play from there. From an external speech-to-text: words may be wrong, so listen before marking a step.' }));
      if (isReviewer) {
        body.append(el('details', { class: 'transcript-replace' },
          el('summary', { text: 'Replace the transcript…' }),
          uploadForm(true)));
      }
      let timer = null;
      filter.addEventListener('input', () => {
        clearTimeout(timer);
        timer = setTimeout(() => applyFilter(filter.value), 150);
      });
      filter.addEventListener('keydown', (e) => {
        if (e.key === 'Enter') {
          e.preventDefault();
          clearTimeout(timer);
          applyFilter(filter.value);
          nextMatch();
        }
      });
      listEl.addEventListener('click', (e) => {
        const li = e.target.closest('li.seg');
        if (!li || !listEl.contains(li)) return;
        // The time link also sets the hash; seeking here covers the same line clicked twice and
        // clicks on the text.
        seekTo(Number(li.dataset.startMs) / 1000);
      });
      updateCurrent();
    }

    // Highlights every occurrence of the query (case-insensitive) with <mark>; counts lines.
    let matchCursor = -1;
    function applyFilter(raw) {
      const q = raw.trim().toLowerCase();
      matchCursor = -1;
      let n = 0;
      segNodes.forEach((li, i) => {
        const span = li.querySelector('.seg-text');
        const text = segments[i].text;
        span.textContent = '';
        li.classList.remove('match-focus');
        if (!q) {
          span.textContent = text;
          li.classList.remove('match');
          return;
        }
        const lower = text.toLowerCase();
        let from = 0;
        let at = lower.indexOf(q);
        const hit = at >= 0;
        while (at >= 0) {
          if (at > from) span.append(text.slice(from, at));
          span.append(el('mark', { text: text.slice(at, at + q.length) }));
          from = at + q.length;
          at = lower.indexOf(q, from);
        }
        if (from < text.length) span.append(text.slice(from));
        li.classList.toggle('match', hit);
        if (hit) n++;
      });
      if (countEl) countEl.textContent = q ? (n ? `${n} line${n === 1 ? '' : 's'} match — Enter for the next` : 'No match') : '';
      if (q && n) nextMatch();
    }

    function nextMatch() {
      if (!segNodes.length) return;
      for (let k = 1; k <= segNodes.length; k++) {
        const i = (matchCursor + k) % segNodes.length;
        if (segNodes[i].classList.contains('match')) {
          if (matchCursor >= 0 && segNodes[matchCursor]) segNodes[matchCursor].classList.remove('match-focus');
          matchCursor = i;
          segNodes[i].classList.add('match-focus');
          scrollIntoList(segNodes[i]);
          return;
        }
      }
    }

    // Scrolls only the transcript list, never the page (the reviewer may be in the form).
    function scrollIntoList(li) {
      if (!listEl) return;
      const top = li.offsetTop;
      const bottom = top + li.offsetHeight;
      if (top < listEl.scrollTop || bottom > listEl.scrollTop + listEl.clientHeight) {
        listEl.scrollTop = Math.max(0, top - listEl.clientHeight / 3);
      }
    }

    // The segment under the playhead: the last one started at or before it that has not ended.
    function indexAt(ms) {
      let lo = 0;
      let hi = segments.length - 1;
      let last = -1;
      while (lo <= hi) {
        const mid = (lo + hi) >> 1;
        if (segments[mid].start_ms <= ms) {
          last = mid;
          lo = mid + 1;
        } else hi = mid - 1;
      }
      // Overlapping segments (two voices in one cue): look back a little for one still running.
      for (let i = last; i >= 0 && i > last - 8; i--) {
        if (segments[i].end_ms > ms || (segments[i].end_ms === segments[i].start_ms && segments[i].start_ms === ms)) return i;
      }
      return -1;
    }

    let hovering = false;
    function updateCurrent() {
      if (!listEl || !segNodes.length) return;
      const ms = playheadMs();
      const idx = ms === null ? -1 : indexAt(ms);
      if (idx === currentIdx) return;
      if (currentIdx >= 0 && segNodes[currentIdx]) segNodes[currentIdx].classList.remove('current');
      currentIdx = idx;
      if (idx >= 0) {
        segNodes[idx].classList.add('current');
        const playing = audio && !audio.paused;
        if (playing && !hovering) scrollIntoList(segNodes[idx]);
      }
    }

    body.addEventListener('pointerover', (e) => {
      hovering = !!(listEl && listEl.contains(e.target));
    });
    body.addEventListener('pointerleave', () => {
      hovering = false;
    });

    if (audio) {
      for (const ev of ['timeupdate', 'seeked', 'seeking', 'loadedmetadata']) audio.addEventListener(ev, updateCurrent);
    }
    whenPlayer(() => updateCurrent());

    function uploadForm(replacing) {
      const input = el('input', { id: 'transcript-file', type: 'file', accept: '.vtt,.json', 'aria-label': 'Transcript file (WebVTT or JSON)' });
      const button = el('button', { id: 'transcript-upload-btn', type: 'submit', text: replacing ? 'Replace transcript' : 'Import transcript' });
      const f = el('form', { id: 'transcript-upload', class: 'transcript-upload' },
        el('label', { for: 'transcript-file', text: replacing ? 'New transcript (.vtt or .json):' : 'Import a transcript (.vtt or .json):' }), ' ',
        input, ' ', button);
      f.addEventListener('submit', async (e) => {
        e.preventDefault();
        const file = input.files && input.files[0];
        if (!file) {
          showMsg('Choose a .vtt or .json file first.');
          input.focus();
          return;
        }
        if (file.size > MAX_TRANSCRIPT_BYTES) {
          showMsg(`“${file.name}” is larger than 8 MiB; a transcript of one call is far smaller — is it the right file?`);
          return;
        }
        button.disabled = true;
        showMsg('');
        try {
          const text = await file.text();
          const ext = (file.name.split('.').pop() || '').toLowerCase();
          const sniffVtt = text.replace(/^\uFEFF/, '').startsWith('WEBVTT');
          const type = ext === 'vtt' ? 'text/vtt' : ext === 'json' ? 'application/json' : sniffVtt ? 'text/vtt' : 'application/json';
          const res = await api('POST', urls.transcript, text, { contentType: type });
          await loadTranscript();
          const n = res && typeof res.segments === 'number' ? res.segments : segments.length;
          showMsg(`Imported ${n} segment${n === 1 ? '' : 's'}${res && res.format ? ` (${res.format})` : ''} from “${file.name}”.`, 'ok');
          await refreshForm();
        } catch (err) {
          showMsg(`Could not import “${file.name}”: ${err.message}`);
        } finally {
          button.disabled = false;
        }
      });
      return f;
    }

    const api2 = window.callrecCompliance || {
      checks: () => [],
      reload: () => Promise.resolve([]),
      flush: () => Promise.resolve(),
      form: () => null,
    };
    api2.transcript = () => segments;
    api2.reloadTranscript = loadTranscript;
    window.callrecCompliance = api2;

    loadTranscript()
      .catch((err) => {
        showMsg(`The transcript could not be shown: ${err && err.message ? err.message : err}`);
        document.body.dataset.transcript = 'error';
      })
      .finally(() => {
        document.body.dataset.transcriptReady = '1';
      });
  }
})();
