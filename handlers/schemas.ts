/**
 * @module handlers/schemas
 * Input limits of the example app (SPEC section 4).
 */
import { z } from 'zod';
import { hasLoneSurrogate } from '../runtime/index.ts';

/** Room names are keys everywhere (Redis, presence, feeds): well-formed text only. */
export const roomName = z
  .string()
  .min(1)
  .max(128)
  .refine((s) => !hasLoneSurrogate(s), 'must be well-formed Unicode');
export const text = z.string().min(1).max(4096);
