/**
 * @module store/redis/commit-args
 * The argument layout of commit.lua, both ways: one commit's keys and arguments out, its reply
 * back into a CommitResult. Shared by the one-call commit and the two-step commit.
 */
import { type Committed, resolveReply } from '../../app/define-app.ts';
import type { DirectMessage, RoomMessage, StoredResponse } from '../../ports/messages.ts';
import { type CommitInput, type CommitResult, UncommittableError } from '../../ports/session-store.ts';
import { hasLoneSurrogate } from '../../protocol/decode.ts';
import { okResponseJson } from '../../protocol/encode.ts';
import { roomKeys, sessionKeys } from './keys.ts';

/**
 * A name as Redis sees it: node-redis sends a lone surrogate as U+FFFD, while Lua's cjson refuses
 * the `\udXXX` escape JSON.stringify writes for it (which would fail the whole batch). Names that
 * travel inside the commits' JSON get the same U+FFFD here.
 */
const asRedisText = (s: string): string => (hasLoneSurrogate(s) ? s.replace(/\p{Surrogate}/gu, '\ufffd') : s);

/** A response that is final before the commit runs (nothing to fill in), and its JSON. */
export interface FinalResponse {
  response: StoredResponse;
  json: string;
}

/** What commit.lua limits and names: from the store's limits, once per call. */
export interface CommitLimits {
  dedupeMax: number;
  outboxMax: number;
  roomHistoryMax: number;
  roomTtlS: number;
}

/**
 * One commit.lua call: its keys and arguments, and per input the response if already final, or
 * why it was left out of the call (`refused`: the application's reply could not be laid out).
 * `replyIndex[i]` is input i's place among the script's replies.
 */
export interface CommitCall {
  keys: string[];
  args: (string | number)[];
  finals: (FinalResponse | undefined)[];
  refused: (UncommittableError | undefined)[];
  replyIndex: number[];
  /** How many commits the call holds (0: no call needed). */
  size: number;
}

/**
 * Lays out commits for one commit.lua call. The commits travel as one JSON argument (one string
 * for Node to encode and Redis to parse, instead of about ten per commit); the keys they touch are
 * declared in KEYS, in the order the script reads them.
 * @param joinOffsets - 'split' mode (step 1 of a two-step commit, one commit): each join's offset
 */
export function commitCall(inputs: CommitInput[], limits: CommitLimits, newRoomEpoch: string, joinOffsets?: string[]): CommitCall {
  const split = joinOffsets !== undefined;
  const keys: string[] = [];
  const per = new PerInput();
  const commits: unknown[] = [];
  for (const input of inputs) {
    // The application's reply is laid out first: if it cannot be (an afterCommit that throws, a
    // result JSON cannot carry), this commit alone is left out, and the others still go.
    const laid = per.layOut(input);
    if (!laid) continue;
    const { response, json, state } = laid;
    per.place(commits.length, response && input.sends.length + input.broadcasts.length === 0 ? { response, json } : undefined);
    const k = sessionKeys(input.sessionId);
    if (split) keys.push(k.session, k.records, k.pending);
    else keys.push(k.session, k.records);
    // split: only the sender's keys; the messages wait as a pending entry
    if (!split) {
      for (const m of input.sends) keys.push(sessionKeys(m.to).session, sessionKeys(m.to).outbox);
      for (const b of input.broadcasts) keys.push(roomKeys(b.room).meta, roomKeys(b.room).stream);
      for (const room of input.joins) keys.push(roomKeys(room).meta);
    }
    const head = [String(input.epoch), asRedisText(input.requestId ?? ''), state, json];
    // most commits have no effects: they end after the response (see commit.lua)
    if (input.sends.length + input.broadcasts.length + input.joins.length + input.leaves.length === 0) {
      commits.push(head);
      continue;
    }
    commits.push([
      ...head,
      input.sends.map((m) => [asRedisText(m.to), asRedisText(m.route), JSON.stringify(m.data ?? null)]),
      input.broadcasts.map((b) => [asRedisText(b.room), asRedisText(b.route), JSON.stringify(b.data ?? null)]),
      split ? input.joins.map((room, i) => [asRedisText(room), joinOffsets[i]!]) : input.joins.map(asRedisText),
      input.leaves.map(asRedisText),
    ]);
  }
  const args = [limits.dedupeMax, limits.outboxMax, limits.roomHistoryMax, limits.roomTtlS * 1000, newRoomEpoch, split ? 'split' : 'single', JSON.stringify(commits)];
  return { keys, args, ...per.lists(), size: commits.length };
}

/** A commit that writes only its own session (state, exactly-once record): no messages, no memberships. */
export const isPlain = (input: CommitInput): boolean => input.sends.length + input.broadcasts.length + input.joins.length + input.leaves.length === 0;

/** The plain commits of one session under one epoch, in order. */
interface PlainGroup {
  sessionId: string;
  epoch: number;
  /** its place among the script's replies */
  index: number;
  /** the last state of the group as JSON ('' = unchanged) */
  state: string;
  tails: string[];
  /** the same session's group under another epoch (an old owner's requests in the same batch) */
  other: PlainGroup | undefined;
}

/** `<n>:` per id length in bytes, made once */
const idLengthPrefix: string[] = [];
const idPrefix = (n: number): string => (idLengthPrefix[n] ??= `${n}:`);

/**
 * Lays out plain commits (see `isPlain`) for one commit-plain.lua call: grouped by session and
 * epoch, in order, each as plain string arguments (nothing for the script to decode). A commit's
 * reply is its group's.
 */
export function plainCommitCall(inputs: CommitInput[], limits: CommitLimits): CommitCall {
  const per = new PerInput();
  const groups: PlainGroup[] = [];
  const bySession = new Map<string, PlainGroup>();
  for (const input of inputs) {
    const laid = per.layOut(input);
    if (!laid) continue;
    const { response, json, state } = laid;
    let group = bySession.get(input.sessionId);
    while (group && group.epoch !== input.epoch) group = group.other;
    if (!group) {
      group = { sessionId: input.sessionId, epoch: input.epoch, index: groups.length, state: '', tails: [], other: bySession.get(input.sessionId) };
      bySession.set(input.sessionId, group);
      groups.push(group);
    }
    if (state !== '') group.state = state;
    const id = input.requestId ?? '';
    // the record's id length is in bytes, as Lua counts them (see recall.lua)
    if (json !== '' && id !== '') group.tails.push(idPrefix(Buffer.byteLength(id)) + asRedisText(id) + json);
    per.place(group.index, response ? { response, json } : undefined);
  }
  const keys: string[] = [];
  const args: (string | number)[] = [limits.dedupeMax];
  for (const group of groups) {
    const k = sessionKeys(group.sessionId);
    keys.push(k.session, k.records);
    args.push(String(group.epoch), group.state, group.tails.length);
    for (const tail of group.tails) args.push(tail);
  }
  return { keys, args, ...per.lists(), size: groups.length };
}

/**
 * The response to record and its JSON (templated where the commit assigns seqs or offsets). A plain
 * reply the handle stage already turned into JSON is not serialized again.
 * @throws what an afterCommit throws, or JSON.stringify for what JSON cannot carry
 */
export function layOut(input: CommitInput): FinalResponse | undefined {
  const r = input.response;
  if (!r) return undefined;
  if (r.ok && r.replyJson !== undefined) return { response: { ok: true, data: r.reply }, json: okResponseJson(r.replyJson) };
  const response = templateResponse(r, input.broadcasts.length, input.sends.length);
  return { response, json: JSON.stringify(response) };
}

/** What a call reports per input: its final response if known, why it was left out, its reply's place. */
class PerInput {
  private readonly finals: (FinalResponse | undefined)[] = [];
  private readonly refused: (UncommittableError | undefined)[] = [];
  private readonly replyIndex: number[] = [];

  /** The input's response and state laid out, or undefined when it is refused (then it is left out of the call). */
  layOut(input: CommitInput): Exclude<ReturnType<typeof layOutOrRefuse>, UncommittableError> | undefined {
    const laid = layOutOrRefuse(input);
    if (!(laid instanceof UncommittableError)) return laid;
    this.refused.push(laid);
    this.finals.push(undefined);
    this.replyIndex.push(-1);
    return undefined;
  }

  place(replyIndex: number, final: FinalResponse | undefined): void {
    this.refused.push(undefined);
    this.finals.push(final);
    this.replyIndex.push(replyIndex);
  }

  lists(): Pick<CommitCall, 'finals' | 'refused' | 'replyIndex'> {
    return { finals: this.finals, refused: this.refused, replyIndex: this.replyIndex };
  }
}

/**
 * One commit's response and state, laid out for the store ('' = none / unchanged), or why it
 * cannot be (an afterCommit that throws, what JSON cannot carry): that commit alone is left out.
 */
function layOutOrRefuse(input: CommitInput): { response: StoredResponse | undefined; json: string; state: string } | UncommittableError {
  try {
    const laid = layOut(input);
    return { response: laid?.response, json: laid?.json ?? '', state: stateJson(input) };
  } catch (err) {
    return new UncommittableError(`the reply cannot be stored: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** The new state as JSON ('' = unchanged). */
const stateJson = (input: CommitInput): string => (input.state === undefined ? '' : (input.stateJson ?? JSON.stringify(input.state)));

/** A commit without messages: shared empty lists (nobody adds to a result's lists). */
const NONE_SENT: DirectMessage[] = [];
const NONE_BROADCAST: RoomMessage[] = [];

/** One commit's reply from commit.lua. */
export type CommitReply = 1 | unknown[];

/** Reads one commit's reply from commit.lua (a 'pending' reply is the two-step commit's business). */
export function commitResult(input: CommitInput, final: FinalResponse | undefined, reply: CommitReply): CommitResult {
  if (reply === 1) return final ? { ok: true, sent: NONE_SENT, broadcast: NONE_BROADCAST, response: final.response, responseJson: final.json } : { ok: true, sent: NONE_SENT, broadcast: NONE_BROADCAST };
  const status = reply[0] as string;
  if (status !== 'ok') return { ok: false, reason: status === 'stale_epoch' ? 'stale_epoch' : 'no_session' };
  const responseJson = reply[1] as string;
  const nSeqs = reply[3] as number;
  const seqs = reply.slice(4, 4 + nSeqs) as number[];
  const offs = reply.slice(4 + nSeqs) as string[];
  if (!input.response) return committed(input, seqs, offs, reply[2] as string, undefined);
  const result = committed(input, seqs, offs, reply[2] as string, final ? final.response : (JSON.parse(responseJson) as StoredResponse));
  if (result.ok) result.responseJson = final ? final.json : responseJson;
  return result;
}

/** A successful commit's result, from the seqs and offsets its messages got. */
export function committed(input: CommitInput, seqs: number[], offs: string[], roomsJson: string, response: StoredResponse | undefined): CommitResult {
  const sent: DirectMessage[] = [];
  input.sends.forEach((s, i) => {
    if (seqs[i]! > 0) sent.push({ to: s.to, seq: seqs[i]!, route: s.route, data: s.data ?? null });
  });
  const broadcast: RoomMessage[] = input.broadcasts.map((b, i) => ({ room: b.room, off: offs[i]!, route: b.route, data: b.data ?? null }));
  const result: CommitResult = { ok: true, sent, broadcast };
  if (roomsJson !== '') result.rooms = JSON.parse(roomsJson) as Record<string, string>;
  if (response) result.response = response;
  return result;
}

/** Fills a templated response JSON the way commit.lua does (two-step commits fill it here). */
export function fillTemplate(json: string, seqs: number[], offs: string[]): string {
  return json
    .replace(/@@tether:off:(\d+)@@/g, (_, i: string) => offs[Number(i)] ?? '')
    .replace(/"@@tether:seq:(\d+)@@"/g, (_, i: string) => String(seqs[Number(i)] ?? 0))
    .replace(/@@tether:seq:(\d+)@@/g, (_, i: string) => String(seqs[Number(i)] ?? 0));
}

/**
 * The response to record, with what the commit will assign standing in as placeholders that the
 * commit script fills in (offsets and seqs only exist once the script has run).
 */
export function templateResponse(response: NonNullable<CommitInput['response']>, broadcasts: number, sends: number): StoredResponse {
  if (!response.ok) return { ok: false, error: response.error };
  const placeholders: Committed =
    broadcasts + sends === 0
      ? NOTHING_ASSIGNED
      : {
          offsets: Array.from({ length: broadcasts }, (_, i) => `@@tether:off:${i}@@`),
          seqs: Array.from({ length: sends }, (_, i) => `@@tether:seq:${i}@@` as unknown as number),
        };
  const data = resolveReply(response.reply, placeholders);
  return data === undefined ? { ok: true } : { ok: true, data };
}

const NOTHING_ASSIGNED: Committed = Object.freeze({ offsets: [], seqs: [] });
