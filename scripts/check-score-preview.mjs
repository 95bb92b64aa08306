// Checks the browser's score preview (src/serve/assets/common.js `computeScore`) against the
// shared cases in fixtures/score-cases.json, which the Rust unit test `score_cases_fixture`
// (src/qa/scorecard.rs) checks the server's `score` against too: the two formulas cannot drift
// apart unnoticed. Run by `make lint-js`; needs nothing but node (no DOM: common.js touches the
// page only when its helpers are called, so it runs here with a stub `window`).
//
// Usage: node scripts/check-score-preview.mjs   (exit status 1 on any mismatch)
import { readFileSync } from 'node:fs';
import vm from 'node:vm';

const root = new URL('../', import.meta.url);
const source = readFileSync(new URL('src/serve/assets/common.js', root), 'utf8');
const fixture = JSON.parse(readFileSync(new URL('fixtures/score-cases.json', root), 'utf8'));

const window = {};
vm.runInNewContext(source, { window }, { filename: 'src/serve/assets/common.js' });
const { computeScore } = window.callrec;

const TOLERANCE = 1e-9;

// Differences between `got` and `want` (numbers within the tolerance), as "path: got vs want".
function differences(got, want, path = 'score') {
  if (typeof want === 'number' && typeof got === 'number') {
    return Math.abs(got - want) <= TOLERANCE ? [] : [`${path}: ${got} vs ${want}`];
  }
  if (Array.isArray(want)) {
    if (!Array.isArray(got) || got.length !== want.length) {
      return [`${path}: ${JSON.stringify(got)} vs ${JSON.stringify(want)}`];
    }
    return want.flatMap((w, i) => differences(got[i], w, `${path}[${i}]`));
  }
  if (want !== null && typeof want === 'object') {
    if (got === null || typeof got !== 'object') return [`${path}: ${JSON.stringify(got)} vs an object`];
    return Object.keys(want).flatMap((k) => differences(got[k], want[k], `${path}.${k}`));
  }
  return got === want ? [] : [`${path}: ${JSON.stringify(got)} vs ${JSON.stringify(want)}`];
}

let passed = 0;
let failed = 0;
for (const c of fixture.cases) {
  const card = fixture.cards[c.card];
  const problems = [];
  if (!card) {
    problems.push(`no card "${c.card}" in the fixture`);
  } else {
    const answers = new Map(c.answers.map((a) => [a.q, a.value]));
    const got = computeScore(card, answers);
    problems.push(...differences(got, c.expected));
    const total = card.sections.reduce((n, s) => n + s.questions.length, 0);
    if (got.answered !== total || got.questions !== total) {
      problems.push(`answered ${got.answered} of ${got.questions} questions, expected all ${total}`);
    }
  }
  if (problems.length) {
    failed++;
    console.log(`FAIL ${c.name}\n  ${problems.join('\n  ')}`);
  } else {
    passed++;
    console.log(`ok   ${c.name}`);
  }
}
console.log(`score preview vs fixtures/score-cases.json: ${passed} passed, ${failed} failed`);
process.exitCode = failed || !passed ? 1 : 0;
