// @ts-check
// leadbridge's operator console. It uses only the public admin API, with the
// admin token kept in this tab's sessionStorage (never a cookie, never a URL).
// Every value is put on the page as text (textContent, attribute values):
// a client's name or a Salesforce error message is untrusted input, and no
// code path here parses a string as HTML.

import { api, connPath, enc, onUnauthorized, token, TOKEN_KEY } from './api.js';
import { append, copyButton, fill, h, main, note, secretPanel, show, when } from './dom.js';
import { FLAGS, MAPPING, SAMPLE_WEBHOOK, SETTINGS, STATES } from './settings.js';

let timer = null; // the backfill page's refresh
let flash = null; // a message that stays while its page refreshes itself
let view = 0; // bumps on every navigation, so late answers of an old page are dropped





// ---- sign in -----------------------------------------------------------

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  document.getElementById('nav').hidden = true;
  signIn(message);
}

function signIn(message) {
  const input = h('input', { id: 'token', type: 'password', autocomplete: 'off', required: true, spellcheck: 'false' });
  const form = h('form', {
    class: 'card',
    onsubmit: async (e) => {
      e.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      try {
        await api('GET', '/v1/connections');
      } catch (err) {
        if (err.status !== 401) signOut(`The service did not answer: ${err.message}`);
        return;
      }
      document.getElementById('nav').hidden = false;
      route();
    },
  },
  h('label', { for: 'token' }, 'Admin token'),
  h('p', { class: 'hint', id: 'token-hint' }, 'LEADBRIDGE_ADMIN_TOKEN, or the file leadbridge.db.admin-token beside the database. It is kept in this tab only.'),
  input,
  h('button', { type: 'submit' }, 'Sign in'));
  input.setAttribute('aria-describedby', 'token-hint');
  show('Sign in', message ? note('error', message) : null, form);
  input.focus();
}

// ---- router ------------------------------------------------------------

async function route() {
  clearTimeout(timer);
  timer = null;
  flash = null;
  const mine = ++view;
  if (!token()) return signIn();
  document.getElementById('nav').hidden = false;
  const [path, query] = (location.hash.slice(1) || '/').split('?');
  const params = new URLSearchParams(query || '');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  try {
    if (parts.length === 0) return await connectionsPage(mine);
    if (parts[0] === 'new') return newConnectionPage();
    if (parts[0] === 'c' && parts.length === 2) return await connectionPage(parts[1], mine);
    if (parts[0] === 'c' && parts[2] === 'clients') return await clientsPage(parts[1], params, mine);
    if (parts[0] === 'c' && parts[2] === 'backfill') return await backfillPage(parts[1], mine);
    show('Not found', note('error', 'Nothing is at this address.'), h('p', {}, h('a', { href: '#/' }, 'Connections')));
  } catch (err) {
    if (err.status === 401 || mine !== view) return;
    show('Something went wrong', note('error', err.message));
  }
}

function current(mine) {
  return mine === view;
}

// ---- connections -------------------------------------------------------

function usage(u) {
  if (!u) return 'not reported yet';
  const pct = u.max ? Math.round((u.used / u.max) * 100) : 0;
  return `${u.used.toLocaleString()} / ${u.max.toLocaleString()} (${pct}%; budget ${u.budgetPercent}%)${u.budgetReached ? ' — budget reached' : ''}`;
}

async function connectionsPage(mine) {
  const { connections } = await api('GET', '/v1/connections');
  if (!current(mine)) return;
  const rows = connections.map((c) => {
    const n = c.clients || {};
    const waiting = (n.pending || 0) + (n.retrying || 0) + (n.held || 0);
    return h('tr', {},
      h('th', { scope: 'row' }, h('a', { href: `#/c/${enc(c.name)}` }, c.name)),
      h('td', {}, c.caption || ''),
      h('td', {}, c.enabled ? 'enabled' : 'disabled'),
      h('td', {}, usage(c.apiUsage)),
      h('td', { class: 'num' }, n.synced ?? 0),
      h('td', { class: 'num' }, waiting),
      h('td', { class: 'num' }, n.dead ? h('a', { href: `#/c/${enc(c.name)}/clients?state=dead` }, n.dead) : 0));
  });
  show('Connections',
    h('p', {}, h('a', { href: '#/new', class: 'button' }, 'New connection')),
    connections.length === 0
      ? h('p', {}, 'No connections yet.')
      : h('table', { id: 'connections' },
        h('thead', {}, h('tr', {}, ['Name', 'Caption', 'State', 'API usage today', 'Synced', 'Pending', 'Dead'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, rows)),
    h('p', { class: 'hint' }, 'Client counts are at most a few seconds old.'));
}

/** One labelled control of a form, with a place for its error. */
function field(id, label, control, hint) {
  const hintId = hint ? `${id}-hint` : null;
  control.id = id;
  if (hintId) control.setAttribute('aria-describedby', `${hintId} ${id}-error`);
  else control.setAttribute('aria-describedby', `${id}-error`);
  return h('div', { class: 'field' },
    h('label', { for: id }, label),
    hint ? h('p', { class: 'hint', id: hintId }, hint) : null,
    control,
    h('p', { class: 'field-error', id: `${id}-error` }));
}

function settingControl(s, conn) {
  if (s.options) {
    const value = conn ? conn[s.key] : s.options[0];
    return h('select', {}, s.options.map((o) => h('option', { value: o, selected: o === value }, o)));
  }
  const attrs = { type: s.type || 'text', autocomplete: 'off', spellcheck: 'false' };
  if (s.writeOnly) {
    attrs.placeholder = conn && conn.consumerSecretSet ? 'set; leave empty to keep it' : 'not set';
  } else if (conn && conn[s.key] !== null && conn[s.key] !== undefined) {
    attrs.value = conn[s.key];
  }
  return h('input', attrs);
}

/** A Lead field chooser: the org's fields when known, else free text. */
function leadFieldControl(fields, value, { externalOnly = false, none = '— not synced —' } = {}) {
  if (!fields) return h('input', { type: 'text', value: value || '', autocomplete: 'off', spellcheck: 'false' });
  const offered = fields.filter((f) => !externalOnly || f.externalId);
  const option = (f) => h('option', { value: f.name, selected: f.name === value }, `${f.label} (${f.name})`);
  const select = h('select', {}, h('option', { value: '' }, none));
  if (value && !offered.some((f) => f.name === value)) {
    select.append(h('option', { value, selected: true }, `${value} (not writable in this org)`));
  }
  const custom = offered.filter((f) => f.custom);
  const standard = offered.filter((f) => !f.custom);
  if (custom.length) select.append(h('optgroup', { label: 'Custom fields' }, custom.map(option)));
  if (standard.length) select.append(h('optgroup', { label: 'Standard fields' }, standard.map(option)));
  return select;
}

/** Shows a 422's errors beside their fields; returns those that have no field here. */
function showErrors(form, err) {
  for (const p of form.querySelectorAll('.field-error')) p.textContent = '';
  for (const c of form.querySelectorAll('[aria-invalid]')) c.removeAttribute('aria-invalid');
  const unplaced = [];
  for (const e of (err.problem && err.problem.errors) || []) {
    const control = form.querySelector(`[id="f-${e.field}"]`);
    if (!control) {
      unplaced.push(`${e.field} ${e.message}`);
      continue;
    }
    control.setAttribute('aria-invalid', 'true');
    form.querySelector(`[id="f-${e.field}-error"]`).textContent = `${e.field} ${e.message}`;
  }
  const first = form.querySelector('[aria-invalid]');
  if (first) first.focus();
  return unplaced;
}

function formStatus(form, ...content) {
  const slot = form.querySelector('.form-status');
  fill(slot, ...content);
}

function settingsFields(conn, leadFields) {
  const out = [];
  if (!conn) {
    out.push(field('f-name', 'Name', h('input', { type: 'text', required: true, autocomplete: 'off', spellcheck: 'false', pattern: '[a-z0-9][a-z0-9_\\-]{0,62}' }),
      'Lower-case letters, digits, - and _. Part of the webhook URL; cannot change later.'));
  }
  for (const s of SETTINGS) out.push(field(`f-${s.key}`, s.label, settingControl(s, conn), s.hint));
  out.push(field('f-externalIdField', 'External ID field',
    leadFieldControl(leadFields, conn && conn.externalIdField, { externalOnly: true, none: '— none: leadbridge keeps each Lead Id —' }),
    'A Lead field marked External ID: writes become upserts by clientId.'));
  const mapping = h('fieldset', {}, h('legend', {}, 'Field mapping'),
    h('p', { class: 'hint' }, leadFields
      ? 'Lead fields of this org that leadbridge can write. An unmapped value is not synced.'
      : 'Save the credentials to choose from the org\'s Lead fields; until then type the API name.'),
    MAPPING.map((m) => field(`f-fieldMapping.${m.key}`, `${m.label} (${m.source}) →`,
      leadFieldControl(leadFields, conn && conn.fieldMapping[m.key]))));
  out.push(mapping);
  for (const f of FLAGS) {
    out.push(h('div', { class: 'field check' },
      h('input', { type: 'checkbox', id: `f-${f.key}`, checked: conn ? conn[f.key] : f.initial, 'aria-describedby': `f-${f.key}-error` }),
      h('label', { for: `f-${f.key}` }, f.label),
      h('p', { class: 'field-error', id: `f-${f.key}-error` })));
  }
  return out;
}

/** The form's values, as a create body or as a merge patch of what changed. */
function formBody(form, conn) {
  const val = (id) => {
    const c = form.querySelector(`[id="${id}"]`);
    const v = c.value.trim();
    return v === '' ? null : v;
  };
  const body = {};
  if (!conn) body.name = val('f-name') || '';
  for (const s of SETTINGS) {
    const v = val(`f-${s.key}`);
    if (s.writeOnly) {
      if (v !== null) body[s.key] = v;
    } else if (!conn ? v !== null : v !== (conn[s.key] ?? null)) {
      body[s.key] = v;
    }
  }
  const ext = val('f-externalIdField');
  if (!conn ? ext !== null : ext !== (conn.externalIdField ?? null)) body.externalIdField = ext;
  const mapping = {};
  for (const m of MAPPING) {
    const v = val(`f-fieldMapping.${m.key}`);
    if (!conn ? v !== null : v !== (conn.fieldMapping[m.key] ?? null)) mapping[m.key] = v;
  }
  if (Object.keys(mapping).length) body.fieldMapping = mapping;
  for (const f of FLAGS) {
    const on = form.querySelector(`[id="f-${f.key}"]`).checked;
    if (!conn ? on !== f.initial : on !== conn[f.key]) body[f.key] = on;
  }
  return body;
}

function newConnectionPage() {
  const form = h('form', { id: 'connection-form', class: 'card', novalidate: true },
    settingsFields(null, null),
    h('div', { class: 'form-status' }),
    h('button', { type: 'submit' }, 'Create connection'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    let created;
    try {
      created = await api('POST', '/v1/connections', formBody(form, null));
    } catch (err) {
      const rest = err.status === 422 ? showErrors(form, err) : [err.message];
      formStatus(form, rest.length ? note('error', rest.join('; ')) : note('error', 'Some fields need attention.'));
      return;
    }
    show(`Connection ${created.name} created`,
      secretPanel('Webhook secret', created.webhookSecret,
        h('p', {}, 'Webhook URL to register in B2CORE: ', h('code', { id: 'webhook-url' }, location.origin + created.webhookUrl))),
      h('p', {}, h('a', { href: `#/c/${enc(created.name)}`, id: 'open-connection' }, `Open ${created.name}`)));
  });
  show('New connection', form);
}

function tabs(name, active) {
  const tab = (href, label, key) => h('a', { href, 'aria-current': key === active ? 'page' : null }, label);
  return h('nav', { class: 'tabs', 'aria-label': `Connection ${name}` },
    tab(`#/c/${enc(name)}`, 'Settings', 'settings'),
    tab(`#/c/${enc(name)}/clients`, 'Clients', 'clients'),
    tab(`#/c/${enc(name)}/backfill`, 'Backfill', 'backfill'));
}

async function connectionPage(name, mine) {
  const conn = await api('GET', connPath(name));
  if (!current(mine)) return;
  let leadFields = null;
  let fieldsNote = null;
  if (conn.domainUrl && conn.consumerKey && conn.consumerSecretSet) {
    try {
      const list = await api('GET', `${connPath(name)}/lead-fields`);
      if (list.error) fieldsNote = note('error', `The org's Lead fields could not be read: ${list.error.code}: ${list.error.message}`);
      else leadFields = list.fields;
    } catch (err) {
      fieldsNote = note('error', `The org's Lead fields could not be read: ${err.message}`);
    }
    if (!current(mine)) return;
  }
  const n = conn.clients || {};
  const summary = h('dl', { class: 'summary' },
    h('dt', {}, 'State'), h('dd', { id: 'conn-state' }, conn.enabled ? 'enabled' : 'disabled'),
    h('dt', {}, 'Webhook URL'), h('dd', {}, h('code', {}, location.origin + conn.webhookUrl)),
    h('dt', {}, 'API usage today'), h('dd', {}, usage(conn.apiUsage)),
    h('dt', {}, 'Clients'), h('dd', {}, `${n.synced || 0} synced, ${(n.pending || 0) + (n.retrying || 0) + (n.held || 0)} pending, ${n.dead || 0} dead, ${n.converted || 0} converted`));
  const form = h('form', { id: 'connection-form', class: 'card', novalidate: true },
    h('h2', {}, 'Settings'),
    fieldsNote,
    settingsFields(conn, leadFields),
    h('div', { class: 'form-status' }),
    h('button', { type: 'submit' }, 'Save'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const body = formBody(form, conn);
    if (Object.keys(body).length === 0) {
      formStatus(form, note('ok', 'Nothing changed.'));
      return;
    }
    try {
      await api('PATCH', connPath(name), body, 'application/merge-patch+json');
    } catch (err) {
      const rest = err.status === 422 ? showErrors(form, err) : [err.message];
      formStatus(form, rest.length ? note('error', rest.join('; ')) : note('error', 'Some fields need attention.'));
      return;
    }
    await connectionPage(name, ++view);
    const saved = document.querySelector('#connection-form .form-status');
    if (saved) fill(saved, note('ok', 'Saved.'));
  });
  show(`Connection ${conn.name}`, tabs(name, 'settings'), summary, form,
    testSection(name), previewSection(name), secretSection(name));
}

function testSection(name) {
  const out = h('div', { id: 'test-report', 'aria-live': 'polite' });
  const button = h('button', {
    type: 'button',
    id: 'test-connection',
    onclick: async () => {
      button.disabled = true;
      fill(out, note('ok', 'Asking Salesforce for a fresh token and describe of Lead…'));
      try {
        fill(out, report(await api('POST', `${connPath(name)}/test`)));
      } catch (err) {
        const fields = ((err.problem && err.problem.errors) || []).map((e) => `${e.field} ${e.message}`);
        fill(out, note('error', fields.length ? fields.join('; ') : err.message));
      } finally {
        button.disabled = false;
      }
    },
  }, 'Test connection');
  return h('section', { class: 'card' }, h('h2', {}, 'Test'),
    h('p', {}, 'Gets a fresh token and describes Lead. Nothing is written.'), button, out);
}

function yesNo(v) {
  return v === null || v === undefined ? 'unknown' : v ? 'yes' : 'no';
}

function report(r) {
  const c = r.credentials;
  /** @type {HTMLElement[]} */
  const parts = [c.ok
    ? note('ok', `Credentials work (instance ${c.instanceUrl}).`)
    : note('error', `Credentials refused: ${c.error}: ${c.errorDescription || ''}`, c.hint ? h('br') : null, c.hint || '')];
  if (r.describeOk === false) parts.push(note('error', `Describe of Lead failed: ${r.describeError.code}: ${r.describeError.message}`));
  if (r.describeOk) {
    parts.push(h('dl', { class: 'summary' },
      h('dt', {}, 'MiddleName'), h('dd', {}, yesNo(r.middleName)),
      h('dt', {}, 'CountryCode (country picklists)'), h('dd', {}, yesNo(r.countryCode))));
    const rules = r.orgRules;
    parts.push(h('dl', { class: 'summary', id: 'org-rules' },
      h('dt', {}, 'Duplicate-rule header (v52.0+)'), h('dd', {}, yesNo(rules.duplicateRuleHeader)),
      h('dt', {}, 'On a duplicate'), h('dd', {}, rules.onDuplicate),
      h('dt', {}, 'Assignment rule on new Leads'), h('dd', {}, yesNo(rules.assignOnCreate)),
      h('dt', {}, 'StateCode (state picklists)'), h('dd', {}, yesNo(rules.stateCode)),
      rules.activeCountries == null ? null : [h('dt', {}, 'Active countries'), h('dd', {}, String(rules.activeCountries))],
      rules.countriesWithStates == null ? null : [h('dt', {}, 'Countries with states'),
        h('dd', {}, rules.countriesWithStates.length ? rules.countriesWithStates.join(', ') : 'none')]));
    for (const w of rules.warnings) parts.push(note('error', w));
    if (r.fields.length) {
      parts.push(h('table', { id: 'field-checks' },
        h('thead', {}, h('tr', {}, ['Setting', 'Lead field', 'Exists', 'Writable', 'External ID'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, r.fields.map((f) => h('tr', { class: f.exists && f.writable ? '' : 'bad' },
          h('td', {}, f.setting), h('td', {}, f.field), h('td', {}, yesNo(f.exists)),
          h('td', {}, yesNo(f.writable)), h('td', {}, yesNo(f.externalId)))))));
    }
  }
  return h('div', {}, parts);
}

function previewSection(name) {
  const input = h('textarea', { rows: 12, spellcheck: 'false' }, JSON.stringify(SAMPLE_WEBHOOK, null, 2));
  const out = h('div', { id: 'preview-result', 'aria-live': 'polite' });
  const form = h('form', {
    onsubmit: async (e) => {
      e.preventDefault();
      try {
        JSON.parse(input.value);
      } catch (err) {
        fill(out, note('error', `Not JSON: ${err.message}`));
        return;
      }
      try {
        const p = await api('POST', `${connPath(name)}/preview`, input.value);
        fill(out,
          h('h3', {}, p.upsertPath ? `Upsert to ${p.upsertPath}` : 'Create (POST)'),
          h('pre', { id: 'preview-create' }, JSON.stringify(p.create, null, 2)),
          h('h3', {}, 'A later update'),
          h('pre', {}, JSON.stringify(p.update, null, 2)),
          p.describeApplied ? null : note('error', 'The org\'s describe was not applied.'),
          p.warnings.length ? h('ul', {}, p.warnings.map((w) => h('li', {}, w))) : null);
      } catch (err) {
        fill(out, note('error', err.message));
      }
    },
  }, field('preview-body', 'Webhook body', input, 'As B2CORE sends it. Nothing is sent to Salesforce.'),
  h('button', { type: 'submit', id: 'preview-submit' }, 'Preview Lead'));
  return h('section', { class: 'card' }, h('h2', {}, 'Preview'), form, out);
}

function secretSection(name) {
  const out = h('div', { 'aria-live': 'polite' });
  const rotate = h('button', {
    type: 'button',
    id: 'rotate-secret',
    onclick: async () => {
      try {
        const r = await api('POST', `${connPath(name)}/webhook-secret/rotate`);
        fill(out, secretPanel('New webhook secret', r.webhookSecret,
          h('p', {}, 'The previous secrets keep verifying until ', when(r.previousSecretsValidUntil), '.')));
      } catch (err) {
        fill(out, note('error', err.message));
      }
    },
  }, 'Rotate webhook secret');
  let armed = false;
  const revoke = h('button', {
    type: 'button',
    id: 'revoke-secrets',
    class: 'danger',
    onclick: async () => {
      if (!armed) {
        armed = true;
        revoke.textContent = 'Confirm: stop the previous secrets now';
        return;
      }
      armed = false;
      revoke.textContent = 'Revoke previous secrets';
      try {
        const r = await api('POST', `${connPath(name)}/webhook-secret/revoke-previous`);
        fill(out, note('ok', `${r.revoked} previous secret(s) stopped verifying.`));
      } catch (err) {
        fill(out, note('error', err.message));
      }
    },
  }, 'Revoke previous secrets');
  return h('section', { class: 'card' }, h('h2', {}, 'Webhook secret'),
    h('p', {}, 'A rotation shows the new secret once; the old one keeps verifying for 24 hours, until revoked.'),
    h('p', { class: 'actions' }, rotate, ' ', revoke), out);
}

// ---- clients -----------------------------------------------------------

async function clientsPage(name, params, mine) {
  const state = params.get('state') || '';
  const cursor = params.get('cursor') || '';
  const limit = params.get('limit') || '50';
  const q = new URLSearchParams({ limit });
  if (state) q.set('state', state);
  if (cursor) q.set('cursor', cursor);
  /** This page's address with `cursor` (none: the first page). */
  const pageHref = (next) => {
    const p = new URLSearchParams();
    if (state) p.set('state', state);
    if (limit !== '50') p.set('limit', limit);
    if (next) p.set('cursor', next);
    return `#/c/${enc(name)}/clients${p.toString() ? `?${p}` : ''}`;
  };
  const page = await api('GET', `${connPath(name)}/clients?${q}`);
  if (!current(mine)) return;
  const status = h('div', { 'aria-live': 'polite', id: 'clients-status' });
  const filter = h('form', {
    class: 'inline',
    onsubmit: (e) => {
      e.preventDefault();
      const s = filter.querySelector('select').value;
      location.hash = `#/c/${enc(name)}/clients${s ? `?state=${enc(s)}` : ''}`;
    },
  }, field('state-filter', 'State', h('select', {}, h('option', { value: '' }, 'all'),
    STATES.map((s) => h('option', { value: s, selected: s === state }, s)))),
  h('button', { type: 'submit' }, 'Show'));
  const retryDead = h('button', {
    type: 'button',
    id: 'retry-dead',
    onclick: async () => {
      try {
        const r = await api('POST', `${connPath(name)}/retry-dead`);
        await clientsPage(name, params, ++view);
        fill(document.getElementById('clients-status'), note('ok', `${r.requeued} dead client(s) requeued.`));
      } catch (err) {
        fill(status, note('error', err.message));
      }
    },
  }, 'Retry all dead');
  const rows = page.clients.map((c) => h('tr', { 'data-client': c.clientId, class: `state-${c.state}` },
    h('th', { scope: 'row' }, c.clientId),
    h('td', { class: 'state' }, c.state),
    h('td', {}, c.leadId || '—'),
    h('td', { class: 'num' }, c.attempts),
    h('td', { class: 'error' }, c.lastError ? [h('strong', {}, c.lastError.code), ': ', c.lastError.message] : '—'),
    h('td', {}, c.warnings.length ? h('ul', {}, c.warnings.map((w) => h('li', {}, w))) : '—'),
    h('td', { class: 'num' }, c.pendingEvents),
    h('td', {}, when(c.nextAttemptAt)),
    h('td', {}, when(c.lastSyncedAt)),
    h('td', {}, h('button', {
      type: 'button',
      class: 'retry',
      'aria-label': `Retry client ${c.clientId}`,
      onclick: async () => {
        try {
          await api('POST', `${connPath(name)}/clients/${enc(c.clientId)}/retry`);
          await clientsPage(name, params, ++view);
          fill(document.getElementById('clients-status'), note('ok', `Client ${c.clientId} requeued.`));
        } catch (err) {
          fill(status, note('error', err.message));
        }
      },
    }, 'Retry'))));
  show(`Clients of ${name}`, tabs(name, 'clients'),
    h('div', { class: 'toolbar' }, filter, retryDead, h('button', { type: 'button', onclick: () => route() }, 'Refresh')),
    status,
    page.clients.length === 0
      ? h('p', {}, cursor ? 'No more clients.' : 'No clients in this state.')
      : h('table', { id: 'clients' },
        h('thead', {}, h('tr', {}, ['Client', 'State', 'Lead', 'Attempts', 'Last error (Salesforce)', 'Warnings', 'Pending events', 'Next attempt', 'Last synced', ''].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, rows)),
    h('p', { class: 'pager' },
      cursor ? h('a', { href: pageHref(null), id: 'first-page' }, 'First page') : null, ' ',
      page.nextCursor ? h('a', { href: pageHref(page.nextCursor), id: 'next-page' }, 'Next page') : null));
}

// ---- backfill ----------------------------------------------------------

async function backfillPage(name, mine) {
  const { jobs } = await api('GET', `${connPath(name)}/backfill`);
  if (!current(mine)) return;
  const status = h('div', { 'aria-live': 'polite' });
  const file = h('input', { type: 'file', accept: '.ndjson,.jsonl,application/x-ndjson' });
  const form = h('form', {
    class: 'card',
    onsubmit: async (e) => {
      e.preventDefault();
      if (!file.files.length) {
        fill(status, note('error', 'Choose a file first.'));
        return;
      }
      fill(status, note('ok', 'Uploading…'));
      try {
        const job = await api('POST', `${connPath(name)}/backfill`, file.files[0], 'application/x-ndjson');
        flash = note('ok', `Job ${job.jobId}: ${job.accepted} of ${job.read} lines accepted.`);
        await backfillPage(name, ++view);
      } catch (err) {
        fill(status, note('error', err.message));
      }
    },
  }, field('backfill-file', 'NDJSON file (one client per line, the data of a webhook)', file),
  h('button', { type: 'submit', id: 'backfill-submit' }, 'Upload'), status);
  const running = jobs.some((j) => j.state === 'receiving' || j.synced < j.accepted);
  show(`Backfill of ${name}`, tabs(name, 'backfill'), flash, form,
    jobs.length === 0 ? h('p', {}, 'No backfill jobs yet.') : h('table', { id: 'jobs' },
      h('thead', {}, h('tr', {}, ['Job', 'State', 'Read', 'Accepted', 'Synced', 'Progress', 'Rejected', 'Started'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, jobs.map((j) => h('tr', {},
        h('th', { scope: 'row' }, h('code', {}, j.jobId)),
        h('td', {}, j.state),
        h('td', { class: 'num' }, j.read),
        h('td', { class: 'num' }, j.accepted),
        h('td', { class: 'num' }, j.synced),
        h('td', {}, h('progress', { max: Math.max(j.accepted, 1), value: j.synced, 'aria-label': `Job ${j.jobId} synced` })),
        h('td', {}, j.rejectedCount ? h('details', {}, h('summary', {}, String(j.rejectedCount)),
          h('ul', {}, j.rejected.map((r) => h('li', {}, `line ${r.line}: ${r.error}`)))) : '0'),
        h('td', {}, when(j.createdAt)))))),
    running ? h('p', { class: 'hint' }, 'Refreshing every 2 seconds while a job is syncing.') : null);
  if (running) {
    clearTimeout(timer);
    timer = setTimeout(() => {
      if (current(mine)) backfillPage(name, ++view).catch(() => {});
    }, 2000);
  }
}

// ---- start -------------------------------------------------------------

onUnauthorized(signOut);

document.addEventListener('DOMContentLoaded', () => {
  document.getElementById('sign-out').addEventListener('click', () => signOut());
  window.addEventListener('hashchange', route);
  route();
});
