// common.js — what the page scripts share, in one place: building elements (el) and message
// paragraphs (say), time and date formatting, the page's <meta> values (CSRF token, user), the API fetch wrapper with one
// set of error messages, HttpError, the score formula of the evaluation form's live preview
// (the same formula as src/qa/scorecard.rs `score`), and the per-party mute/solo state applied
// to the buttons and the Web Audio gains (the player's and the live page's).
//
// Loaded before player.js, live.js, evaluate.js, compliance.js and qa.js (every page that has
// one of them lists this first). There are no modules and no build step, so everything is
// published on one namespace object, window.callrec. Nothing here touches the page when it loads, so node can
// run this file with a stub `window` (scripts/check-score-preview.mjs checks the score formula
// against fixtures/score-cases.json, the cases the Rust unit tests check too).
'use strict';
(() => {
  // ---------------------------------------------------------------------------------------
  // DOM

  // el('button', {class: 'x', type: 'button', dataset: {now: 'q1'}, text: 'Hi'}, ...children)
  // Booleans set properties (hidden, checked, disabled, open); everything else is an attribute.
  // Null, undefined and false children are skipped; arrays are flattened.
  function el(tag, props, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === null || v === undefined) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k === 'dataset') {
        for (const [dk, dv] of Object.entries(v)) if (dv !== null && dv !== undefined) e.dataset[dk] = String(dv);
      } else if (typeof v === 'boolean') e[k] = v;
      else e.setAttribute(k, String(v));
    }
    for (const c of kids.flat()) {
      if (c !== null && c !== undefined && c !== false) e.append(c);
    }
    return e;
  }

  // A message paragraph <p class="<cls> error|flash"> inside `parent` (found by class, created
  // on first use before `before`, removed when `text` is empty) so that a fixed problem does not
  // leave a stale message behind. kind 'ok' is a flash (role status), anything else an error
  // (role alert). Returns the paragraph, or null when removed.
  function say(parent, cls, text, kind = 'error', before = null) {
    let p = parent.querySelector(`:scope > .${cls}`);
    if (!text) {
      if (p) p.remove();
      return null;
    }
    if (!p) {
      p = el('p', { class: cls });
      parent.insertBefore(p, before && before.parentNode === parent ? before : null);
    }
    p.className = `${cls} ${kind === 'ok' ? 'flash' : 'error'}`;
    p.setAttribute('role', kind === 'ok' ? 'status' : 'alert');
    p.textContent = text;
    return p;
  }

  // The content of <meta name="...">, '' when the page has none.
  function metaContent(name) {
    const m = document.querySelector(`meta[name="${name}"]`);
    return m ? m.content : '';
  }

  // The session's CSRF token (pages.rs puts it in <meta name="csrf-token">).
  const csrfToken = () => metaContent('csrf-token');

  // ---------------------------------------------------------------------------------------
  // Formatting

  // m:ss, or h:mm:ss from one hour (or always with `withHours`). Floored, not rounded: a clock
  // must not claim a second that has not started yet.
  function fmtTime(seconds, withHours = false) {
    const s = Math.max(0, Math.floor(seconds + 1e-6));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const ss = String(s % 60).padStart(2, '0');
    return h > 0 || withHours ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
  }

  // A UTC timestamp from the API in the browser's locale; the text itself if it is not a date.
  function fmtDate(utc) {
    if (!utc) return '';
    const d = new Date(utc);
    return Number.isNaN(d.getTime()) ? String(utc) : d.toLocaleString();
  }

  // ---------------------------------------------------------------------------------------
  // HTTP

  // A failed request. `message` is "<status> — <detail>" (just the detail when status is 0:
  // no reply, or a reply that could not be read); `detail` alone is the server's own words, which
  // name the offending question or step in backticks.
  class HttpError extends Error {
    constructor(status, detail) {
      super(detail ? (status ? `${status} — ${detail}` : detail) : String(status));
      this.status = status;
      this.detail = detail || '';
    }
  }

  // What to say for a status when the reply has no JSON `error` of its own.
  const STATUS_WORDS = {
    401: 'not logged in any more — reload the page to log in again',
    403: 'your role may not do this',
    404: 'not found — it may have been deleted; reload the page',
    409: 'it was changed meanwhile — reload the page and try again',
    413: 'what was sent is too large',
    429: 'too many requests — wait a moment and try again',
  };
  const SERVER_FAILED = 'the appliance could not do it — try again in a moment';

  // The detail of a failed reply: the server's JSON `error` when it sent one (the API always
  // does), else words for the status. A 401 always gets the same words: in the browser it means
  // the session ended, and the API's own text (about tokens) does not help there.
  async function failureDetail(res) {
    if (res.status === 401) return STATUS_WORDS[401];
    try {
      const body = await res.json();
      if (body && typeof body.error === 'string' && body.error) return body.error;
    } catch {
      // Not JSON (a proxy page, an empty body): fall back to the status below.
    }
    if (STATUS_WORDS[res.status]) return STATUS_WORDS[res.status];
    if (res.status >= 500) return SERVER_FAILED;
    return res.statusText || '';
  }

  // One request to the API; resolves with the Response when it is 2xx, else throws HttpError.
  // Every non-GET carries the CSRF header, as the server requires. `body` is sent as JSON,
  // unless `opts.contentType` is given: then it is sent as it is (a transcript file, a TOML
  // scorecard, JSON already encoded). `opts.keepalive` lets the request outlive the page.
  async function request(method, url, body, opts = {}) {
    const headers = { Accept: 'application/json' };
    if (method !== 'GET') {
      headers['X-CSRF-Token'] = csrfToken();
      headers['Content-Type'] = opts.contentType || 'application/json';
    }
    const init = {
      method,
      headers,
      body: body === undefined ? undefined : opts.contentType ? body : JSON.stringify(body),
      credentials: 'same-origin',
    };
    if (opts.keepalive) init.keepalive = true;
    let res;
    try {
      res = await fetch(url, init);
    } catch {
      throw new HttpError(0, 'network error — is the appliance reachable?');
    }
    if (!res.ok) throw new HttpError(res.status, await failureDetail(res));
    return res;
  }

  // request(), resolving with the parsed JSON reply (null for an empty reply such as 204).
  async function api(method, url, body, opts) {
    const res = await request(method, url, body, opts);
    let text;
    try {
      text = await res.text();
    } catch {
      throw new HttpError(0, 'the reply was cut off — is the appliance reachable?');
    }
    if (!text) return null;
    try {
      return JSON.parse(text);
    } catch {
      throw new HttpError(0, 'the server sent a reply that is not valid JSON');
    }
  }

  // ---------------------------------------------------------------------------------------
  // Scorecards and the score: the formula of src/qa/scorecard.rs (module doc), for the
  // evaluation form's preview. The server scores on submit; fixtures/score-cases.json holds
  // the cases both implementations are checked against.

  const DEFAULT_PASS_MARK = 80;
  const PASS_TOLERANCE = 1e-9;

  const questionsOf = (card) => card.sections.flatMap((s) => s.questions);
  // Sections and questions: weight 1 unless set (the API leaves the default out).
  const weightOf = (x) => (typeof x.weight === 'number' ? x.weight : 1);

  // {fraction, failing} | null for N/A | undefined when the value does not fit the question.
  // Numbers may come as numbers or as strings of digits (form fields).
  function grade(q, value) {
    if (value === 'na') return q.allow_na ? null : undefined;
    if (q.kind === 'yes_no') {
      if (value === 'yes') return { fraction: 1, failing: false };
      if (value === 'no') return { fraction: 0, failing: true };
      return undefined;
    }
    const n = typeof value === 'number' ? value : /^\d+$/.test(String(value)) ? Number(value) : NaN;
    if (!Number.isInteger(n)) return undefined;
    if (q.kind === 'scale') return n >= 1 && n <= 5 ? { fraction: (n - 1) / 4, failing: n === 1 } : undefined;
    if (q.kind === 'points') {
      const max = q.max_points || 0;
      return max > 0 && n >= 0 && n <= max ? { fraction: n / max, failing: n === 0 } : undefined;
    }
    return undefined;
  }

  // The score of `answers` (Map qid -> value) on `card`, shaped like the server's Score plus
  // `answered` and `questions`. Unanswered (or invalid) questions are left out like N/A, so a
  // partly filled form previews the answered part; `answered` says how many counted. With every
  // question answered validly it equals the server's score.
  function computeScore(card, answers) {
    let totalEarned = 0;
    let totalMax = 0;
    let evaluationFailed = false;
    let answered = 0;
    let questions = 0;
    const failedCritical = [];
    const sections = [];
    for (const s of card.sections) {
      let earned = 0;
      let max = 0;
      let zeroedBy = null;
      for (const q of s.questions) {
        questions++;
        if (!answers.has(q.id)) continue;
        const g = grade(q, answers.get(q.id));
        if (g === undefined) continue;
        answered++;
        if (g === null) continue; // N/A leaves the maximum
        const w = weightOf(q);
        earned += g.fraction * w;
        max += w;
        if (g.failing && q.critical === 'section') {
          if (zeroedBy === null) zeroedBy = q.id;
          failedCritical.push(q.id);
        } else if (g.failing && q.critical === 'evaluation') {
          evaluationFailed = true;
          failedCritical.push(q.id);
        }
      }
      if (zeroedBy !== null) earned = 0;
      const sw = weightOf(s);
      totalEarned += sw * earned;
      totalMax += sw * max;
      sections.push({ id: s.id, earned, max, percent: max > 0 ? (100 * earned) / max : null, zeroed_by: zeroedBy });
    }
    const percent = totalMax > 0 ? (evaluationFailed ? 0 : (100 * totalEarned) / totalMax) : null;
    const passMark = typeof card.pass_mark_percent === 'number' ? card.pass_mark_percent : DEFAULT_PASS_MARK;
    const passed = percent === null ? null : !evaluationFailed && percent + PASS_TOLERANCE >= passMark;
    return { percent, passed, sections, failed_critical: failedCritical, answered, questions };
  }

  // ---------------------------------------------------------------------------------------
  // Per-party mute/solo (the call page's player.js and the live page's live.js)

  // The parties, in the order of their channels (agent 0, customer 1).
  const PARTIES = ['agent', 'customer'];

  // Whether `lane` is heard: not muted, and no other party soloed (`solo`: null or a party).
  function laneAudible(lane, muted, solo) {
    return !muted[lane] && (solo === null || solo === lane);
  }

  // Puts the buttons and the Web Audio gains in step with `muted` and `solo`: each button's
  // aria-pressed, and each party's gain 1 when audible, else 0. `ui.mute` and `ui.solo` map a
  // party to its button, `gains` to its GainNode (null before the graph exists); what is
  // missing is skipped.
  function setLanes(ui, gains, muted, solo) {
    for (const lane of PARTIES) {
      if (ui.mute[lane]) ui.mute[lane].setAttribute('aria-pressed', String(muted[lane]));
      if (ui.solo[lane]) ui.solo[lane].setAttribute('aria-pressed', String(solo === lane));
      // Set immediately (no ramp) so the state is exact the moment the button is pressed.
      if (gains[lane]) gains[lane].gain.value = laneAudible(lane, muted, solo) ? 1 : 0;
    }
  }

  window.callrec = Object.freeze({
    el,
    say,
    metaContent,
    csrfToken,
    fmtTime,
    fmtDate,
    HttpError,
    request,
    api,
    questionsOf,
    weightOf,
    grade,
    computeScore,
    laneAudible,
    setLanes,
  });
})();
