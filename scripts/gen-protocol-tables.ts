/**
 * Regenerates the error-code and close-code tables of docs/PROTOCOL.md from runtime/errors.ts, the
 * single registry of both. The tables sit between `<!-- BEGIN GENERATED: name -->` and
 * `<!-- END GENERATED: name -->` markers; everything else in the file is left alone.
 *
 *   node --import tsx scripts/gen-protocol-tables.ts          rewrite docs/PROTOCOL.md
 *   node --import tsx scripts/gen-protocol-tables.ts --check  exit 1 if the tables are out of date
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CloseCodes, ErrorCodes } from '../runtime/errors.ts';

const DOC = fileURLToPath(new URL('../docs/PROTOCOL.md', import.meta.url));

const cell = (text: string): string => text.replace(/\|/g, '\\|');

function errorTable(): string {
  const rows = Object.entries(ErrorCodes).map(([code, e]) => `| \`${code}\` | ${cell(e.meaning)} |`);
  return ['| `error.code` | meaning |', '|---|---|', ...rows].join('\n');
}

function closeTable(): string {
  const rows = Object.entries(CloseCodes).map(([name, c]) => `| ${c.code} | \`${name}\` | \`${cell(c.reason)}\` | ${cell(c.meaning)} |`);
  return ['| code | name in `CloseCodes` | reason (prefix) | meaning |', '|---|---|---|---|', ...rows].join('\n');
}

function replaceBlock(doc: string, name: string, body: string): string {
  const begin = `<!-- BEGIN GENERATED: ${name} (scripts/gen-protocol-tables.ts) -->`;
  const end = `<!-- END GENERATED: ${name} -->`;
  const from = doc.indexOf(begin);
  const to = doc.indexOf(end);
  if (from < 0 || to < from) throw new Error(`docs/PROTOCOL.md has no "${name}" markers`);
  return `${doc.slice(0, from + begin.length)}\n${body}\n${doc.slice(to)}`;
}

const current = readFileSync(DOC, 'utf8');
const next = replaceBlock(replaceBlock(current, 'error-codes', errorTable()), 'close-codes', closeTable());
if (process.argv.includes('--check')) {
  if (next !== current) {
    process.stderr.write('docs/PROTOCOL.md: the code tables differ from runtime/errors.ts; run node --import tsx scripts/gen-protocol-tables.ts\n');
    process.exit(1);
  }
} else if (next !== current) {
  writeFileSync(DOC, next);
  process.stdout.write('docs/PROTOCOL.md: tables regenerated\n');
} else {
  process.stdout.write('docs/PROTOCOL.md: tables already up to date\n');
}
