/**
 * The OpenAPI 3 document, generated from the operation declarations (the same ones the CLI and the
 * REST server use): path, method, parameters, result, privilege, async (task) or not.
 */
import { describePrivilege, isPrivilegeRule, type Operation } from '../core/operation.ts';
import { toJsonSchema, type Schema } from '../core/schema.ts';

export const API_BASE = '/api2/json';

export function pathParams(path: string): string[] {
  return [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]!);
}

/** The parameters a REST caller may send (CLI-only ones left out). */
export function restSchema(op: Operation<never>): Schema {
  const out: Schema = {};
  for (const [k, p] of Object.entries(op.parameters)) if (!p.internal) out[k] = p;
  return out;
}

export function openApiDocument(ops: readonly Operation<never>[], info: { title?: string; version?: string } = {}): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  const errorResponse = (description: string) => ({
    description,
    content: { 'application/json': { schema: { type: 'object', properties: { data: { nullable: true }, message: { type: 'string' }, errors: { type: 'object', additionalProperties: { type: 'string' } } } } } },
  });
  for (const op of ops) {
    const full = op.root ? op.path : API_BASE + op.path;
    const inPath = pathParams(op.path);
    const schema = toJsonSchema(restSchema(op)) as { properties: Record<string, Record<string, unknown>>; required?: string[] };
    const parameters: Record<string, unknown>[] = inPath.map((name) => ({
      name, in: 'path', required: true,
      schema: schema.properties[name] ?? { type: 'string' },
      description: (schema.properties[name]?.description as string | undefined) ?? (name === 'node' ? 'The cluster node name.' : name),
    }));
    const rest = Object.fromEntries(Object.entries(schema.properties).filter(([k]) => !inPath.includes(k)));
    const required = (schema.required ?? []).filter((k) => !inPath.includes(k));
    let requestBody: Record<string, unknown> | undefined;
    if (op.method === 'GET' || op.method === 'DELETE') {
      for (const [name, s] of Object.entries(rest)) {
        parameters.push({ name, in: 'query', required: required.includes(name), schema: s, description: s.description, ...(s.type === 'array' ? { style: 'form', explode: true } : {}) });
      }
    } else if (Object.keys(rest).length) {
      const body = { type: 'object', additionalProperties: false, properties: rest, ...(required.length ? { required } : {}) };
      requestBody = { required: required.length > 0, content: { 'application/json': { schema: body }, 'application/x-www-form-urlencoded': { schema: body } } };
    }
    const dataSchema = op.async
      ? { type: 'string', description: 'Task id (UPID); follow it under /nodes/{node}/tasks/{upid}' }
      : (op.returns.schema ?? {});
    const operationId = (op.command.length ? op.command : [op.method.toLowerCase(), ...op.path.split('/').filter((s) => s && !s.startsWith('{'))]).join('_');
    (paths[full] ??= {})[op.method.toLowerCase()] = {
      operationId,
      summary: op.description,
      description: `${op.description}\n\nPrivileges: ${describePrivilege(op.privilege)}.${op.async ? ' Runs as a task.' : ''}`,
      parameters,
      ...(requestBody ? { requestBody } : {}),
      responses: {
        200: {
          description: op.returns.description,
          content: {
            ...(op.root ? { [op.returns.contentType ?? 'application/json']: { schema: op.returns.schema } } : { 'application/json': { schema: { type: 'object', properties: { data: dataSchema } } } }),
            ...(op.events ? { 'text/event-stream': { schema: { type: 'string', description: op.events.description } } } : {}),
          },
        },
        400: errorResponse('Parameter verification failed (errors name each field)'),
        401: errorResponse('No or invalid credentials'),
        403: errorResponse('Permission check failed'),
      },
      // A static privilege as {path, privs}; one computed from the call as the rule in words.
      'x-privilege': isPrivilegeRule(op.privilege) ? { description: op.privilege.description } : op.privilege,
      ...(op.async ? { 'x-async-task': true } : {}),
      ...(op.command.length ? { 'x-cli': `pve-smbgateway ${op.command.join(' ')}` } : {}),
    };
  }
  return {
    openapi: '3.0.3',
    info: { title: info.title ?? 'pve-smbgateway API', version: info.version ?? '1', description: 'SMB gateway for Proxmox VE. Responses are {"data": ...}; errors carry the HTTP status, a message and per-field errors.' },
    servers: [{ url: '/' }],
    security: [{ apiToken: [] }, { pveTicket: [], csrf: [] }],
    components: {
      securitySchemes: {
        apiToken: { type: 'apiKey', in: 'header', name: 'Authorization', description: 'PVEAPIToken=<tokenid>=<secret>' },
        pveTicket: { type: 'apiKey', in: 'cookie', name: 'PVEAuthCookie' },
        csrf: { type: 'apiKey', in: 'header', name: 'CSRFPreventionToken', description: 'Needed with a ticket on writes' },
      },
    },
    paths,
  };
}
