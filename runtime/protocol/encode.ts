/**
 * @module protocol/encode
 * Builds the text of every server frame. Pure; the only place server frames are serialized.
 */
import type { WireError } from '../errors.ts';
import type { ServerFrame } from './frames.ts';

export const encodeFrame = (frame: ServerFrame): string => JSON.stringify(frame);

export const encodeOk = (id: string, data: unknown): string =>
  data === undefined ? JSON.stringify({ t: 'res', id, ok: true }) : JSON.stringify({ t: 'res', id, ok: true, data });

export const encodeFail = (id: string, error: WireError): string => JSON.stringify({ t: 'res', id, ok: false, error });

/** A stored `{ ok: true, data }` response from its data's JSON: the same text JSON.stringify gives. */
export const okResponseJson = (dataJson: string): string => `{"ok":true,"data":${dataJson}}`;

/**
 * A `res` from a response the store already holds as JSON (`{"ok":...}`): the same text as
 * encodeOk/encodeFail give, without serializing the data a second time.
 */
export const encodeRecorded = (id: string, responseJson: string): string => `{"t":"res","id":${JSON.stringify(id)},${responseJson.slice(1)}`;

export const encodeError = (error: WireError): string => JSON.stringify({ t: 'error', error });

export const PONG = '{"t":"pong"}';
