/** Every operation the gateway offers; the CLI, REST API and OpenAPI document are built from this list. */
import type { Operation } from '../core/operation.ts';
import type { Gateway } from './context.ts';
import { shareOperations } from './operations/shares.ts';

export const operations: Operation<Gateway>[] = [...shareOperations];
