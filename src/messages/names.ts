/**
 * The names every party of the protocol shares: JetStream streams, KV
 * buckets, the driver hosts' durable and the keys in imgr_meta. Plain
 * constants, so that a client can name them without the server's provisioning.
 */
export const STREAMS = { commands: 'IMGR_CMD', internal: 'IMGR_INT', events: 'IMGR_EVT', driver: 'IMGR_DRV', rejected: 'IMGR_REJ', parked: 'IMGR_PARKED' } as const;
/** The driver hosts' shared durable: created by the manager because the drivers role may only bind to it. */
export const DRIVERS_DURABLE = 'imgr-drivers';
export const BUCKETS = { snapshots: 'imgr_snapshots', outcomes: 'imgr_outcomes', meta: 'imgr_meta' } as const;
/** imgr_meta: the driver hosts' public key and the attributes clients seal (W23). */
export const META_KEYS = { publicKey: 'secrets.publicKey', secretAttributes: 'secrets.attributes' } as const;
