// Store path names, dependency-free (the extension uses them too).

/** "/nix/store/<hash>-hello-2.12.drv" → "hello-2.12" (the whole base name when it has no hash). */
export function storeName(path: string): string {
  const base = path.slice(path.lastIndexOf('/') + 1);
  const dash = base.indexOf('-');
  const name = dash === 32 ? base.slice(dash + 1) : base;
  return name.endsWith('.drv') ? name.slice(0, -4) : name;
}

/** Whether `path` can be a derivation's store path: absolute, `.drv`, no NUL or newline (so safe as an argument). */
export function isDrvPath(path: string): boolean {
  return path.startsWith('/') && path.endsWith('.drv') && !/[\0\n]/.test(path);
}

/** "/nix/store/<hash>-hello" → "<hash>" (what a binary cache's .narinfo is named after). */
export function hashPart(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1).slice(0, 32);
}
