// @ts-check
// What the console shows of a connection and of a client. The connection
// fields here must be the server's (`connections::FIELDS`): a test in
// tests/api/console.rs fails while they differ.

/**
 * A text or choice setting of the connection form.
 * @typedef {{key: string, label: string, type?: string, hint?: string, options?: string[], writeOnly?: boolean}} Setting
 * A yes/no setting, shown as a checkbox.
 * @typedef {{key: string, label: string, initial: boolean}} Flag
 * One of the values a Lead field can be mapped to.
 * @typedef {{key: string, label: string, source: string}} Mapped
 */

export const STATES = ['pending', 'synced', 'retrying', 'dead', 'held', 'converted'];
export const SAMPLE_WEBHOOK = {
  type: 'client.created',
  occurredAt: '2026-11-28T10:00:00Z',
  data: {
    clientId: 10234,
    email: 'jane@example.com',
    info: { firstName: 'Jane', lastName: 'Doe' },
    phones: [{ number: '+35799123456', confirmed: true }],
    addresses: [{ type: 'residential', country: 'Cyprus', countryCode: 'CY', city: 'Limassol' }],
    status: { id: 1, name: 'Active' },
    type: { id: 2, name: 'Individual' },
    verificationLevel: { id: 3, name: 'Full' },
  },
};
// The edit form, in the order of B2CORE's External connections page.
/** @type {Setting[]} */
export const SETTINGS = [
  { key: 'caption', label: 'Caption' },
  { key: 'domainUrl', label: 'Domain URL', type: 'url', hint: 'https://{domain}.my.salesforce.com, or a sandbox My Domain' },
  { key: 'consumerKey', label: 'Consumer key' },
  { key: 'consumerSecret', label: 'Consumer secret', type: 'password', writeOnly: true },
  { key: 'company', label: 'Company', hint: 'Applied to all new Leads.' },
  { key: 'apiVersion', label: 'API version', hint: 'For example v62.0.' },
  { key: 'signatureScheme', label: 'Signature scheme', options: ['standard-webhooks', 'hmac-sha256-hex'] },
  { key: 'signatureHeader', label: 'Signature header', hint: 'hmac-sha256-hex only; X-Signature when empty.' },
  { key: 'onDuplicate', label: 'When a duplicate rule matches a new Lead', options: ['create', 'adopt', 'report'], hint: 'create: a Lead per client anyway; adopt: update the one matched Lead; report: the client is dead with the matched Ids.' },
];
// Yes/no settings, shown as checkboxes.
/** @type {Flag[]} */
export const FLAGS = [
  { key: 'assignOnCreate', label: 'Run the org\'s assignment rule on new Leads (never on updates)', initial: true },
  { key: 'enabled', label: 'Enabled', initial: false },
];
/** @type {Mapped[]} */
export const MAPPING = [
  { key: 'status', label: 'Status', source: 'status.name' },
  { key: 'clientType', label: 'Client type', source: 'type.name' },
  { key: 'verificationLevel', label: 'Verification level', source: 'verificationLevel.name' },
];

// The form's other fields, each with its own control: the name (on create
// only), the External ID field and the field mapping (above).
export const OTHER_FIELDS = ['name', 'externalIdField', 'fieldMapping'];
// Fields of the server that the form leaves to their defaults: salesforce is
// the only provider.
export const NOT_ON_FORM = ['provider'];
