// Watch a set of files for changes, robustly: editors and our own atomic writes replace a file by
// renaming over it, which a watch on the file itself would miss, so we watch the parent folders
// and filter by name. Events are debounced into one callback, with the files that changed.
import { watch, type FSWatcher } from 'node:fs';
import * as path from 'node:path';

export class FilesWatcher {
  private watchers = new Map<string, FSWatcher>();
  private wanted = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private changed = new Set<string>();

  constructor(
    private readonly onChange: (changed: string[]) => void,
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
          // Without a name, any watched file of the folder may have changed.
          const files = name === null ? [...this.wanted].filter((f) => path.dirname(f) === dir) : [path.join(dir, name.toString())].filter((f) => this.wanted.has(f));
          if (files.length > 0) this.fire(files);
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

  private fire(files: readonly string[]): void {
    for (const f of files) this.changed.add(f);
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const changed = [...this.changed];
      this.changed.clear();
      this.onChange(changed);
    }, this.debounceMs);
  }

  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
  }
}
