import { defineConfig } from 'vitest/config';

/**
 * Test tiers by folder: unit (pure, fast), int (a real nats-server per file),
 * e2e (the whole system). `npm test` runs every tier that exists.
 */
export default defineConfig({
  test: {
    reporters: ['default', './test/support/summary-reporter.ts'],
    projects: [
      { test: { name: 'unit', include: ['test/unit/**/*.test.ts'] } },
      { test: { name: 'int', include: ['test/int/**/*.test.ts'], testTimeout: 120_000, hookTimeout: 180_000 } },
      { test: { name: 'e2e', include: ['test/e2e/**/*.test.ts'], testTimeout: 180_000, hookTimeout: 120_000 } },
    ],
  },
});
