/** API tokens of the gateway itself: token create|list|delete (see src/api/tokens.ts). */
import { defineOperation } from '../../core/operation.ts';
import { type Schema } from '../../core/schema.ts';
import type { Gateway } from '../../provision/context.ts';
import { tokenCreatePrivileges } from '../privileges.ts';
import { publicToken, TOKEN_NAME_RE, TOKEN_PREFIX, TOKEN_PRIVS, TokenStore } from '../tokens.ts';

const op = defineOperation<Gateway>();

const MANAGE = { path: '/access', privs: ['Permissions.Modify'] };

const tokenid = {
  type: 'string',
  description: `Token name (or its full id ${TOKEN_PREFIX}<name>)`,
  check: (v: string) => (TOKEN_NAME_RE.test(v.startsWith(TOKEN_PREFIX) ? v.slice(TOKEN_PREFIX.length) : v) ? undefined : 'must start with a letter and have 2 to 64 letters, digits, . _ -'),
} as const;
const bare = (v: string) => (v.startsWith(TOKEN_PREFIX) ? v.slice(TOKEN_PREFIX.length) : v);

const createParams = {
  tokenid,
  privs: {
    type: 'list', optional: true, default: ['Datastore.Audit'],
    description: `Privileges of the token (${TOKEN_PRIVS.join(', ')})`,
    item: (v: string) => ((TOKEN_PRIVS as readonly string[]).includes(v) ? undefined : `must be one of ${TOKEN_PRIVS.join(', ')}`),
  },
  comment: { type: 'string', optional: true, maxLength: 256, description: 'Free text' },
  expire: { type: 'integer', optional: true, minimum: 0, description: 'Expiry (epoch seconds); 0 or absent: never' },
} as const satisfies Schema;

export const tokenCreateOp = op({
  command: ['token', 'create'],
  method: 'POST',
  path: '/access/smbgateway/tokens',
  description: 'Create an API token for the gateway daemon; its secret is shown once.',
  parameters: createParams,
  positional: ['tokenid'],
  aliases: { priv: 'privs' },
  returns: { description: 'The token, its secret, and the Authorization header value to use', schema: { type: 'object' } },
  privilege: tokenCreatePrivileges,
  handler: async (p, g) => {
    const v = p;
    const r = await new TokenStore(g.settings).create(bare(v.tokenid), v.privs, { comment: v.comment, expire: v.expire || undefined });
    return { ...r.token, value: r.value, authorization: r.header };
  },
});

export const tokenListOp = op({
  command: ['token', 'list'],
  method: 'GET',
  path: '/access/smbgateway/tokens',
  description: 'List the API tokens of the gateway (never their secrets).',
  parameters: {},
  returns: { description: 'The tokens', schema: { type: 'array', items: { type: 'object' } } },
  privilege: MANAGE,
  handler: async (_p, g) => (await new TokenStore(g.settings).list()).map(publicToken),
});

const deleteParams = { tokenid } as const satisfies Schema;

export const tokenDeleteOp = op({
  command: ['token', 'delete'],
  method: 'DELETE',
  path: '/access/smbgateway/tokens/{tokenid}',
  description: 'Delete an API token of the gateway.',
  parameters: deleteParams,
  positional: ['tokenid'],
  returns: { description: 'The token deleted', schema: { type: 'object', properties: { tokenid: { type: 'string' } } } },
  privilege: MANAGE,
  handler: async (p, g) => {
    const name = bare(p.tokenid);
    await new TokenStore(g.settings).delete(name);
    return { tokenid: TOKEN_PREFIX + name };
  },
});

export const tokenOperations = [tokenCreateOp, tokenListOp, tokenDeleteOp];
