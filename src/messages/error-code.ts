import { z } from 'zod';
import { ERRORS, type ErrorCode } from './errors.js';

const codes = Object.keys(ERRORS) as [ErrorCode, ...ErrorCode[]];
export const ErrorCodeSchema = z.enum(codes);
