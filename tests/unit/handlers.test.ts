/**
 * The example app's handlers, called as plain functions: no server, no store.
 */
import { describe, expect, it } from 'vitest';
import { app } from '../../handlers/index.ts';
import type { AppState } from '../../handlers/state.ts';
import { type Committed, HandlerError, type HandlerContext, resolveReply } from '../../runtime/app/define-app.ts';
import type { StandardSchemaV1 } from '../../runtime/app/standard-schema.ts';

const ctx = (over: Partial<HandlerContext> = {}): HandlerContext => ({
  sessionId: 's1',
  userId: 'u1',
  instanceId: 'i1',
  requestId: 'r1',
  rooms: [],
  reads: {},
  now: 1_700_000_000_000,
  id: () => 'id-1',
  ...over,
});
const state: AppState = { count: 0 };
const route = (name: string) => app.routes[name]!;
const valid = (name: string, input: unknown) => {
  const schema = route(name).input as StandardSchemaV1 | undefined;
  if (!schema) return true;
  const r = schema['~standard'].validate(input) as { issues?: unknown };
  return !r.issues;
};

describe('echo', () => {
  it('replies with its input unchanged and changes no state', () => {
    const input = { any: ['thing', 1, null] };
    expect(route('echo').handle(state, input, ctx())).toEqual({ reply: input });
  });
});

describe('counter', () => {
  it('adds 1 by default and by when given', () => {
    expect(route('counter.inc').handle({ count: 2 }, undefined, ctx())).toEqual({ state: { count: 3 }, reply: { count: 3 } });
    expect(route('counter.inc').handle({ count: 2 }, { by: -5 }, ctx())).toEqual({ state: { count: -3 }, reply: { count: -3 } });
  });

  it('reads the count without changing it', () => {
    expect(route('counter.get').handle({ count: 9 }, undefined, ctx())).toEqual({ reply: { count: 9 } });
  });

  it('accepts only safe integers for by', () => {
    expect(valid('counter.inc', { by: 3 })).toBe(true);
    expect(valid('counter.inc', {})).toBe(true);
    expect(valid('counter.inc', { by: 1.5 })).toBe(false);
    expect(valid('counter.inc', { by: '1' })).toBe(false);
    expect(valid('counter.inc', { by: 2 ** 60 })).toBe(false);
  });
});

describe('chat', () => {
  it('joins and leaves through effects, replying with the room', () => {
    expect(route('chat.join').handle(state, { room: 'a' }, ctx())).toEqual({ reply: { room: 'a' }, effects: [{ type: 'join', room: 'a' }] });
    expect(route('chat.leave').handle(state, { room: 'a' }, ctx())).toEqual({ reply: { room: 'a' }, effects: [{ type: 'leave', room: 'a' }] });
  });

  it('broadcasts chat.message from the sender user and replies with the committed offset', () => {
    const result = route('chat.send').handle(state, { room: 'a', text: 'hi' }, ctx({ rooms: ['a'] }));
    expect(result.effects).toEqual([{ type: 'broadcast', room: 'a', route: 'chat.message', data: { room: 'a', from: 'u1', text: 'hi' } }]);
    const committed: Committed = { offsets: ['e:7'], seqs: [] };
    expect(resolveReply(result.reply, committed)).toEqual({ off: 'e:7' });
  });

  it('rejects a sender who is not a member with not_member', () => {
    expect(() => route('chat.send').handle(state, { room: 'a', text: 'hi' }, ctx({ rooms: ['b'] }))).toThrow(HandlerError);
    try {
      route('chat.send').handle(state, { room: 'a', text: 'hi' }, ctx());
    } catch (err) {
      expect((err as HandlerError).detail).toBe('not_member');
    }
  });

  it('bounds room names to 1..128 and texts to 1..4096 characters', () => {
    expect(valid('chat.join', { room: 'r'.repeat(128) })).toBe(true);
    expect(valid('chat.join', { room: 'r'.repeat(129) })).toBe(false);
    expect(valid('chat.send', { room: 'a', text: 't'.repeat(4096) })).toBe(true);
    expect(valid('chat.send', { room: 'a', text: 't'.repeat(4097) })).toBe(false);
  });
});

describe('dm', () => {
  it('declares a read of whether the target exists', () => {
    expect(route('dm.send').reads!({ to: 's2', text: 'x' }, { sessionId: 's1', userId: 'u1', rooms: [] })).toEqual({ exists: { kind: 'sessionExists', session: 's2' } });
  });

  it('sends dm.message from the sender session when the target exists', () => {
    const result = route('dm.send').handle(state, { to: 's2', text: 'x' }, ctx({ reads: { exists: true } }));
    expect(result).toEqual({ reply: {}, effects: [{ type: 'send', to: 's2', route: 'dm.message', data: { from: 's1', text: 'x' } }] });
  });

  it('rejects an unknown target with unknown_session', () => {
    expect(() => route('dm.send').handle(state, { to: 's2', text: 'x' }, ctx({ reads: { exists: false } }))).toThrow('no such session');
  });
});

describe('presence', () => {
  it('is read-only and replies with the members the runtime read', () => {
    expect(route('presence.list').readOnly).toBe(true);
    expect(route('presence.list').reads!({ room: 'a' }, { sessionId: 's1', userId: 'u1', rooms: [] })).toEqual({ members: { kind: 'presence', room: 'a' } });
    expect(route('presence.list').handle(state, { room: 'a' }, ctx({ reads: { members: ['u1', 'u2'] } }))).toEqual({ reply: { members: ['u1', 'u2'] } });
  });
});
