/**
 * The CLI's index of commands (src/api/commands.ts) is what scripts/gen-commands.ts writes from the
 * registry, and each command's module declares exactly that operation: the CLI loads only that module.
 */
import { strict as assert } from 'node:assert';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { commands, operationsOf } from '../src/api/commands.ts';
import { operations } from '../src/api/registry.ts';
import { commandsSource } from '../scripts/gen-commands.ts';

test('src/api/commands.ts is current (else: node --import tsx scripts/gen-commands.ts)', async () => {
  assert.equal(await readFile(new URL('../src/api/commands.ts', import.meta.url), 'utf8'), await commandsSource());
});

test('every command of the registry is in the index, and its module declares that very operation', async () => {
  assert.deepEqual(commands.map((c) => c.command.join(' ')), operations.map((o) => o.command.join(' ')));
  for (const op of operations) {
    const entry = commands.find((c) => c.command.join(' ') === op.command.join(' '))!;
    assert.equal(entry.description, op.description);
    assert.deepEqual(entry.positional, op.positional ?? []);
    assert.ok((await operationsOf(entry.module)).includes(op), `${op.command.join(' ')} in module ${entry.module}`);
  }
});
