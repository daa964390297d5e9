import { TestCluster } from '../support/cluster.js';
import { defineSoak } from '../support/soak.js';

// The same soak on a three-node cluster: its nats-server restarts are restarts of one node at a time.
defineSoak({
  nats: () => TestCluster.start(),
  title: 'soak on a three-node NATS cluster: faults under a mixed workload',
  claim: 'keeps every guarantee through node restarts and killed managers and driver hosts',
  workloadMs: 45_000,
});
