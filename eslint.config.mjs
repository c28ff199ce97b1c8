// @ts-check
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'out/**', 'node_modules/**', '.lab/**', '.cache/**', 'test-results/**'] },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', ignoreRestSiblings: true }],
      'no-restricted-imports': [
        'error',
        {
          paths: [
            { name: 'child_process', message: 'Processes are started only by language-server/nix/runner.ts.' },
            { name: 'node:child_process', message: 'Processes are started only by language-server/nix/runner.ts.' },
            { name: 'execa', message: 'Processes are started only by language-server/nix/runner.ts.' },
            { name: 'ssh2', message: 'SSH goes only through language-server/remote/.' },
          ],
        },
      ],
    },
  },
  {
    files: ['language-server/nix/runner.ts', 'language-server/remote/**'],
    rules: { 'no-restricted-imports': 'off' },
  },
  {
    // Tests, the lab, scripts and benchmarks start processes of their own.
    files: ['test/**', 'bench/**', 'scripts/**'],
    rules: { 'no-restricted-imports': 'off' },
  },
);
