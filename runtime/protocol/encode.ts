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

export const encodeError = (error: WireError): string => JSON.stringify({ t: 'error', error });

export const PONG = '{"t":"pong"}';
