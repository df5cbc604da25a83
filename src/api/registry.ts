/** Every operation the gateway offers; the CLI, REST API and OpenAPI document are built from this list. */
import type { Operation } from '../core/operation.ts';
import type { Gateway } from './context.ts';
import { shareOperations } from './operations/shares.ts';
import { templateOperations } from './operations/templates.ts';
import { templateOperations } from './operations/templates.ts';
import { metricsOp } from './operations/metrics.ts';
import { tokenOperations } from './operations/tokens.ts';
import { showOp, updateOp } from './operations/update.ts';
import { haOperations } from './operations/ha.ts';
import { backupOperations } from './operations/backup.ts';

export const operations: Operation<Gateway>[] = [...shareOperations, ...haOperations];
operations.push(showOp, updateOp, metricsOp, ...tokenOperations);
operations.push(...templateOperations);
operations.push(...backupOperations);
operations.push(...templateOperations);
