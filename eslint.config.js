// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** The domain is pure: rules and messages read no clock, make no ids, and do no I/O (design principle 1). */
const purity = {
  files: ['src/machines/**/*.ts', 'src/messages/**/*.ts'],
  rules: {
    'no-restricted-imports': [
      'error',
      {
        patterns: [
          { group: ['node:*'], message: 'The domain does no I/O: no node:* modules.' },
          { group: ['@nats-io/*', 'nats'], message: 'The domain does not talk to NATS.' },
          { group: ['pino', 'pino-*'], message: 'The domain does not log; facts say what happened.' },
          {
            group: ['fs', 'path', 'os', 'child_process', 'crypto', 'http', 'https', 'net', 'events', 'timers', 'worker_threads'],
            message: 'The domain does no I/O.',
          },
        ],
      },
    ],
    'no-restricted-globals': [
      'error',
      { name: 'process', message: 'The domain reads no environment.' },
      { name: 'setTimeout', message: 'Time arrives in the envelope.' },
      { name: 'setInterval', message: 'Time arrives in the envelope.' },
      { name: 'performance', message: 'Time arrives in the envelope.' },
      { name: 'fetch', message: 'The domain does no I/O.' },
      { name: 'crypto', message: 'Ids arrive in the envelope.' },
    ],
    'no-restricted-syntax': [
      'error',
      { selector: "CallExpression[callee.object.name='Date'][callee.property.name='now']", message: 'Time arrives in the envelope.' },
      { selector: "NewExpression[callee.name='Date'][arguments.length=0]", message: 'Time arrives in the envelope.' },
      { selector: "CallExpression[callee.object.name='Math'][callee.property.name='random']", message: 'Ids and choices arrive in the envelope.' },
    ],
  },
};

/** The client library speaks the protocol and imports nothing of the server: a service can depend on it alone. */
const SERVER = ['actors', 'api', 'audit', 'cli', 'driver-host', 'intake', 'machines', 'projections', 'reactors', 'store'];
const clientFace = {
  files: ['src/client/**/*.ts'],
  rules: {
    'no-restricted-imports': [
      'error',
      {
        patterns: [
          { group: SERVER.map((d) => `../${d}/*`), message: 'src/client imports the protocol (src/messages, src/protocol, src/secrets/sealed and fingerprint), never the server.' },
          { group: ['../manager.js', '../main.js', '../start.js', '../secrets/keyring.js'], message: 'src/client imports the protocol, never the server.' },
        ],
      },
    ],
  },
};

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', 'coverage/', 'drivers/'] },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: { allowDefaultProject: ['eslint.config.js'] }, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' }],
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
      '@typescript-eslint/consistent-type-imports': 'error',
      // `it('…', () => given(…).thenRejects(…))` is the house style of specifications.
      '@typescript-eslint/no-confusing-void-expression': ['error', { ignoreArrowShorthand: true }],
    },
  },
  purity,
  clientFace,
  {
    files: ['eslint.config.js'],
    ...tseslint.configs.disableTypeChecked,
  },
);
