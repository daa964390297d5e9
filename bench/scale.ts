/**
 * Pool sizes of the scenarios. `IMGR_BENCH_SCALE=quick` shrinks them for a
 * look at a change (minutes); the default is what BENCHMARKS.md reports.
 */
export interface BenchScale {
  readonly rebuildImages: number;
  readonly factsPerImage: number;
}

export function benchScale(): BenchScale {
  const quick = process.env['IMGR_BENCH_SCALE'] === 'quick';
  return quick ? { rebuildImages: 10_000, factsPerImage: 10 } : { rebuildImages: 100_000, factsPerImage: 10 };
}
