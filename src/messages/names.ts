/**
 * The names every party of the protocol shares: JetStream streams, KV
 * buckets, the driver hosts' durable and the keys in imgr_meta. Plain
 * constants, so that a client can name them without the server's provisioning.
 */
export const STREAMS = { commands: 'IMGR_CMD', internal: 'IMGR_INT', replies: 'IMGR_REP', events: 'IMGR_EVT', driver: 'IMGR_DRV', rejected: 'IMGR_REJ', parked: 'IMGR_PARKED' } as const;
/** The driver hosts' shared durable: created by the manager because the drivers role may only bind to it. */
export const DRIVERS_DURABLE = 'imgr-drivers';
export const BUCKETS = { snapshots: 'imgr_snapshots', outcomes: 'imgr_outcomes', meta: 'imgr_meta', leases: 'imgr_leases' } as const;
/** imgr_meta: the driver hosts' public key, the attributes clients seal (W23), the store's partition count. */
export const META_KEYS = { publicKey: 'secrets.publicKey', secretAttributes: 'secrets.attributes', partitions: 'partitions' } as const;

/**
 * Set by a sender on a command whose id it has just minted (a fresh UUID),
 * so no outcome can be stored under it yet: the intake skips the outcome
 * lookup for such a command on its first delivery. Any other command (a
 * resend with a given id, a redelivery, a sender that does not say) is
 * looked up first. A sender that sets it on an id it used before gives up
 * only its own idempotency: another actor's commit under the id is still
 * refused as a reuse.
 */
export const MINTED_ID_HEADER = 'Imgr-Id-Minted';

/**
 * On every commit imgr appends: how many effects its facts ask for. The
 * reactors acknowledge a commit that says 0 (most of an acquire/release
 * load) without reading it; a commit without the header (an older log) is
 * read as before.
 */
export const EFFECTS_HEADER = 'Imgr-Effects';

/** On every commit imgr appends: the fingerprint of the commit schema of the code that wrote it (COMMIT_SHAPE). */
export const COMMIT_SHAPE_HEADER = 'Imgr-Commit-Shape';
