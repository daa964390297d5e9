import type { Reporter, TestModule } from 'vitest/node';

/**
 * Ends a run with the plain `N passed, N failed` line that CI reads, counting
 * every test case of every project; a run that executed nothing says so. A
 * file whose set-up or tear-down failed counts each of its unrun tests as
 * failed, not skipped: they did not pass.
 */
export default class SummaryReporter implements Reporter {
  onTestRunEnd(modules: readonly TestModule[]): void {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    for (const m of modules) {
      const broken = m.state() === 'failed' || m.errors().length > 0;
      for (const t of m.children.allTests()) {
        const s = t.result().state;
        if (s === 'passed') passed += 1;
        else if (s === 'failed' || broken) failed += 1;
        else skipped += 1;
      }
      // A file that failed outside its tests (collection, set-up, tear-down) counts once even when every test passed.
      if (broken && ![...m.children.allTests()].some((t) => t.result().state === 'failed')) failed += 1;
    }
    process.stdout.write(`\n${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ''}\n`);
  }
}
