import { TestNats } from '../support/nats.js';
import { defineSoak } from '../support/soak.js';

defineSoak({
  nats: () => TestNats.start(),
  title: 'soak: faults under a mixed workload',
  claim: 'keeps every guarantee through nats-server restarts and killed managers and driver hosts',
  workloadMs: 60_000,
});
