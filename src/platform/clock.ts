/** The runtime's source of time; the domain never reads it, the host passes it in the envelope. */
export interface Clock {
  now(): number;
}
export const systemClock: Clock = { now: () => Date.now() };
