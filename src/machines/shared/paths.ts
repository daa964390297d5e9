/**
 * A file directly in `folder`: no sub-folder, no `.` or `..` step out of it.
 * What a datastore may call its own: a sweep reclaims only such files, and a
 * driver's SOURCE is taken only when it is one (a driver host is trusted with
 * the files of the datastore it serves, never with a path elsewhere).
 */
export const inFolder = (folder: string, path: string): boolean => {
  const base = folder.replace(/\/+$/, '');
  if (base === '' || !path.startsWith(`${base}/`)) return false;
  const name = path.slice(base.length + 1);
  return name !== '' && name !== '.' && name !== '..' && !name.includes('/');
};
