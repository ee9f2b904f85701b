/**
 * @module store/redis/commit-args
 * The argument layout of commit.lua, both ways: one commit's keys and arguments out, its reply
 * back into a CommitResult. Shared by the one-call commit and the two-step commit.
 */
import { type Committed, resolveReply } from '../../app/define-app.ts';
import type { DirectMessage, RoomMessage, StoredResponse } from '../../ports/messages.ts';
import type { CommitInput, CommitResult } from '../../ports/session-store.ts';
import { roomKeys, sessionKeys } from './keys.ts';

/** A response that is final before the commit runs (nothing to fill in), and its JSON. */
export interface FinalResponse {
  response: StoredResponse;
  json: string;
}

/**
 * Adds one commit's keys and arguments, in the layout commit.lua reads. Returns the response when
 * it is already final (nothing for the commit to fill in), so the script need not send it back.
 */
export function appendCommit(input: CommitInput, keys: string[], args: (string | number)[], joinOffsets?: string[]): FinalResponse | undefined {
  const k = sessionKeys(input.sessionId);
  keys.push(k.session, k.records, k.pending);
  const split = joinOffsets !== undefined;
  const response = input.response ? templateResponse(input.response, input.broadcasts.length, input.sends.length) : undefined;
  const json = response ? JSON.stringify(response) : '';
  args.push(
    input.epoch,
    input.requestId ?? '',
    input.state === undefined ? '' : JSON.stringify(input.state),
    json,
    input.sends.length,
    input.broadcasts.length,
    input.joins.length,
    input.leaves.length,
  );
  // split (step 1 of a two-step commit): only the sender's keys; messages wait as pending
  for (const s of input.sends) {
    if (!split) keys.push(sessionKeys(s.to).session, sessionKeys(s.to).outbox);
    args.push(s.to, s.route, JSON.stringify(s.data ?? null));
  }
  for (const b of input.broadcasts) {
    if (!split) keys.push(roomKeys(b.room).meta, roomKeys(b.room).stream);
    args.push(b.room, b.route, JSON.stringify(b.data ?? null));
  }
  input.joins.forEach((room, i) => {
    if (split) args.push(room, joinOffsets[i]!);
    else {
      keys.push(roomKeys(room).meta);
      args.push(room);
    }
  });
  for (const room of input.leaves) args.push(room);
  return response && input.sends.length + input.broadcasts.length === 0 ? { response, json } : undefined;
}

/** One commit's reply from commit.lua. */
export type CommitReply = 1 | unknown[];

/** Reads one commit's reply from commit.lua (a 'pending' reply is the two-step commit's business). */
export function commitResult(input: CommitInput, final: FinalResponse | undefined, reply: CommitReply): CommitResult {
  if (reply === 1) return final ? { ok: true, sent: [], broadcast: [], response: final.response, responseJson: final.json } : { ok: true, sent: [], broadcast: [] };
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
