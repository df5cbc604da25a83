/** Every operation the gateway offers; the CLI, REST API and OpenAPI document are built from this list. */
import type { Operation } from '../core/operation.ts';
import type { Gateway } from '../provision/context.ts';
import { accessOperations } from './operations/access.ts';
import { auditOp } from './operations/audit.ts';
import { applyOperations } from './operations/apply.ts';
import { doctorOp } from './operations/doctor.ts';
import { adOperations } from './operations/ad.ts';
import { haAdOperations } from './operations/ha-ad.ts';
import { backupOperations } from './operations/backup.ts';
import { replicateOp } from './operations/replicate.ts';
import { haOperations } from './operations/ha.ts';
import { metricsOp } from './operations/metrics.ts';
import { repairOp } from './operations/repair.ts';
import { sessionOperations } from './operations/sessions.ts';
import { shareOperations } from './operations/shares.ts';
import { templateOperations } from './operations/templates.ts';
import { tokenOperations } from './operations/tokens.ts';
import { showOp, updateOp } from './operations/update.ts';

export const operations: Operation<Gateway>[] = [
  ...shareOperations,
  showOp,
  updateOp,
  ...accessOperations,
  auditOp,
  ...applyOperations,
  doctorOp,
  metricsOp,
  ...backupOperations,
  replicateOp,
  ...haOperations,
  ...templateOperations,
  ...tokenOperations,
  repairOp,
  ...sessionOperations,
  ...adOperations,
  ...haAdOperations,
];
