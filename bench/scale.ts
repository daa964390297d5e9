/**
 * Pool sizes of the scenarios. `IMGR_BENCH_SCALE=quick` shrinks them for a
 * look at a change (minutes); the default is what BENCHMARKS.md reports.
 */
export interface BenchScale {
  readonly rebuildImages: number;
  readonly factsPerImage: number;
  /** Pool sizes of the scale curve. */
  readonly pools: readonly number[];
  /** Registrations through the dummy driver at each pool size. */
  readonly registrations: number;
  /** The life cycle: images registered, then clones of them made and deleted. */
  readonly lifecycleImages: number;
  readonly lifecycleClones: number;
}

export function benchScale(): BenchScale {
  const quick = process.env['IMGR_BENCH_SCALE'] === 'quick';
  const base = scaleFor(quick);
  // IMGR_BENCH_POOLS=100000 and IMGR_BENCH_REGISTRATIONS=500 look at one point of the curve.
  const pools = process.env['IMGR_BENCH_POOLS']?.split(',').map(Number).filter((n) => n > 0);
  const registrations = Number(process.env['IMGR_BENCH_REGISTRATIONS'] ?? NaN);
  return { ...base, ...(pools && pools.length > 0 ? { pools } : {}), ...(registrations > 0 ? { registrations } : {}) };
}

function scaleFor(quick: boolean): BenchScale {
  return quick
    ? { rebuildImages: 10_000, factsPerImage: 10, pools: [1_000], registrations: 500, lifecycleImages: 1_000, lifecycleClones: 200 }
    : { rebuildImages: 100_000, factsPerImage: 10, pools: [1_000, 10_000, 100_000], registrations: 1_000, lifecycleImages: 10_000, lifecycleClones: 1_000 };
}
