// Watch a set of files for changes, robustly: editors and our own atomic writes replace a file by
// renaming over it, which a watch on the file itself would miss, so we watch the parent folders
// and filter by name. Events are debounced into one callback.
import { watch, type FSWatcher } from 'node:fs';
import * as path from 'node:path';

export class FilesWatcher {
  private watchers = new Map<string, FSWatcher>();
  private wanted = new Set<string>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly onChange: () => void,
    private readonly debounceMs = 150,
  ) {}

  /** Replace the watched set. Files that do not exist yet are watched through their folder. */
  setFiles(files: Iterable<string>): void {
    this.wanted = new Set([...files].map((f) => path.resolve(f)));
    const dirs = new Set([...this.wanted].map((f) => path.dirname(f)));
    for (const [dir, w] of this.watchers) {
      if (!dirs.has(dir)) {
        w.close();
        this.watchers.delete(dir);
      }
    }
    for (const dir of dirs) {
      if (this.watchers.has(dir)) continue;
      try {
        const w = watch(dir, { persistent: false }, (_event, name) => {
          if (name === null || this.wanted.has(path.join(dir, name.toString()))) this.fire();
        });
        w.on('error', () => {
          w.close();
          this.watchers.delete(dir);
        });
        this.watchers.set(dir, w);
      } catch {
        // The folder does not exist: nothing there can change what Nix reads.
      }
    }
  }

  private fire(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.onChange();
    }, this.debounceMs);
  }

  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
  }
}
