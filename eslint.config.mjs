// ESLint for the web UI's hand-written scripts: `make lint-js` (npm ci, then eslint).
// The assets are classic scripts (no modules, no build step) that share helpers through
// window.callrec (common.js); the checks under scripts/ are node ES modules.
import js from '@eslint/js';
import globals from 'globals';

export default [
  js.configs.recommended,
  {
    files: ['src/serve/assets/**/*.js'],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: 'script',
      globals: { ...globals.browser },
    },
  },
  {
    files: ['scripts/**/*.mjs', 'eslint.config.mjs'],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: 'module',
      globals: { ...globals.node },
    },
  },
];
