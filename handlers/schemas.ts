/**
 * @module handlers/schemas
 * Input limits of the example app (SPEC section 4).
 */
import { z } from 'zod';

export const roomName = z.string().min(1).max(128);
export const text = z.string().min(1).max(4096);
