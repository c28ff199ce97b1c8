// Benchmark of the internal-json log parser: 1 M lines, cycled from logs recorded with Nix 2.8.0
// (test/fixtures/nix-2.8.0/*.jsonl), fed in 64 KiB chunks as a build's stderr would arrive, never
// held in memory as a whole. Prints throughput and peak heap (flat: independent of log size).
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { InternalJsonLogParser } from '../language-server/nix/logParser';

const LINES = 1_000_000;
const CHUNK = 64 * 1024;

export async function benchLogParser(): Promise<void> {
  const dir = path.join(__dirname, '../test/fixtures/nix-2.8.0');
  const sample = readdirSync(dir)
    .filter((f) => f.endsWith('.jsonl'))
    .flatMap((f) => readFileSync(path.join(dir, f), 'utf8').split('\n').filter((l) => l.length > 0));
  const parser = new InternalJsonLogParser();
  let events = 0;
  let peakHeap = 0;
  let buffer = '';
  let chunks = 0;
  const started = performance.now();
  for (let i = 0; i < LINES; i++) {
    buffer += `${sample[i % sample.length]}\n`;
    if (buffer.length >= CHUNK) {
      events += parser.push(buffer).length;
      buffer = '';
      if (++chunks % 16 === 0) peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed);
    }
  }
  events += parser.push(buffer).length + parser.end().length;
  const seconds = (performance.now() - started) / 1000;
  if (events < LINES) throw new Error(`parsed ${events} events from ${LINES} lines`);
  console.log(`log-parser-1M-lines: ${seconds.toFixed(2)} s (goal: <= 2 s; ${Math.round(LINES / seconds).toLocaleString('en')} lines/s)`);
  console.log(`log-parser-peak-heap: ${(peakHeap / 2 ** 20).toFixed(0)} MiB (goal: flat in log size; 1 M lines, ${sample.length} distinct recorded lines)`);
}
