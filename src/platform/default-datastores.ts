import { AllowedNetworks, URL_ALLOW_ATTRIBUTE } from '../driver-host/address-policy.js';

/**
 * The datastores `npm start` creates on first start: the built-in ones of
 * spec §12.2 (ids 1 and 2) and a dummy one. Their drivers copy local files
 * only from the data directory's `import` folder: everything else on the
 * host is a restricted directory, the datastores' own folder included (an
 * image's SOURCE is no secret, so a PATH naming another user's SOURCE would
 * copy that user's disk). A restored disk is read from its restore's staging
 * folder by an allowance for that one copy (driver-host/staging.ts), and a
 * URL is downloaded by imgr into its own staging folder the same way.
 */
export function defaultDatastoreTemplates(imports: string, urlAllowedNetworks?: string) {
  // The networks URL imports may reach besides public addresses (none unless the operator names some; checked here).
  const networks = (urlAllowedNetworks ?? '').trim();
  if (networks !== '') AllowedNetworks.parse(networks);
  const allow = networks !== '' ? { [URL_ALLOW_ATTRIBUTE]: networks } : {};
  const paths = { RESTRICTED_DIRS: '/', SAFE_DIRS: imports, ...allow };
  return {
    default: { NAME: 'default', DS_MAD: 'fs', TM_MAD: 'shared', ...paths },
    files: { NAME: 'files', TYPE: 'FILE_DS', DS_MAD: 'fs', TM_MAD: 'shared', ...paths },
    dummy: { NAME: 'dummy', DS_MAD: 'dummy', TM_MAD: 'dummy' },
  };
}

/** Whether a SAFE_DIRS lets a driver copy from `folder` (or a folder within it): an earlier start's default let it read every datastore. */
export function safeDirsCover(safeDirs: string | undefined, folder: string): boolean {
  const f = `${folder.replace(/\/+$/, '')}/`;
  return (safeDirs ?? '').split(/\s+/).some((d) => d !== '' && (d === '/' || f.startsWith(`${d.replace(/\/+$/, '')}/`)));
}
