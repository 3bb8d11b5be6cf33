// @ts-check
// Building the page. Every value goes on the page as text (textContent,
// attribute values): a client's name or a Salesforce error message is
// untrusted input, and nothing here parses a string as HTML.

/**
 * An element with attributes (on* are listeners) and children (strings become text).
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Record<string, any> | null} [attrs]
 * @param {...any} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (k === 'value') /** @type {any} */ (node).value = v;
    else if (k === 'checked') /** @type {any} */ (node).checked = !!v;
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  append(node, children);
  return node;
}

/**
 * @param {Element} node
 * @param {any[]} children
 */
export function append(node, children) {
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/**
 * Replaces the node's children (null and false children are left out).
 * @param {Element} node
 * @param {...any} children
 */
export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
}

/** @returns {HTMLElement} */
export function main() {
  return /** @type {HTMLElement} */ (document.getElementById('main'));
}

export function show(title, ...children) {
  document.title = `${title} · leadbridge console`;
  const m = main();
  fill(m, h('h1', {}, title), ...children);
  m.focus();
}

export function note(kind, ...text) {
  return h('p', { class: `note ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, ...text);
}

/**
 * A time as the reader's local time; the ISO text on hover.
 * @param {string | null | undefined} ts
 */
export function when(ts) {
  if (!ts) return '—';
  const d = new Date(ts);
  return h('time', { datetime: ts, title: ts }, d.toLocaleString());
}

export function copyButton(target) {
  return h('button', {
    type: 'button',
    class: 'copy',
    onclick: async (e) => {
      const b = e.currentTarget;
      try {
        await navigator.clipboard.writeText(target.textContent);
        b.textContent = 'Copied';
      } catch {
        const r = document.createRange();
        r.selectNodeContents(target);
        getSelection().removeAllRanges();
        getSelection().addRange(r);
        b.textContent = 'Selected: press Ctrl+C';
      }
    },
  }, 'Copy');
}

export function secretPanel(title, secret, ...more) {
  const code = h('code', { id: 'webhook-secret' }, secret);
  return h('section', { class: 'secret', 'aria-labelledby': 'secret-title' },
    h('h2', { id: 'secret-title' }, title),
    h('p', {}, 'Paste it into B2CORE now: it is shown only this once.'),
    h('p', { class: 'secret-value' }, code, ' ', copyButton(code)),
    ...more);
}
