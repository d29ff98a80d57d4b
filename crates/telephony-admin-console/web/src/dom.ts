// DOM helpers: elements are built with createElement and filled with textContent only, so that
// nothing the server or a user typed is ever parsed as markup. No inline styles: CSS classes and
// the `hidden` attribute do the presentation.

import type { DescEnum } from "@bufbuild/protobuf";
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";

type AttrValue = string | number | boolean | undefined;
/** Attributes to set; `style` is refused at compile time (the CSP forbids inline styles). */
export type Attrs = { [name: string]: AttrValue } & { style?: never };
export type Child = Node | string | undefined | null | false;

/** An element with attributes (false/undefined: absent, true: present) and children. */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    node.setAttribute(name, value === true ? "" : String(value));
  }
  append(node, ...children);
  return node;
}

export function append(parent: Node, ...children: Child[]): void {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    parent.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
  }
}

/** Replaces every child of `parent`. */
export function replace(parent: Node, ...children: Child[]): void {
  while (parent.firstChild) parent.removeChild(parent.firstChild);
  append(parent, ...children);
}

export function button(
  label: string,
  test: string,
  onClick: (event: MouseEvent) => void,
  attrs: Attrs = {},
): HTMLButtonElement {
  const node = el("button", { type: "button", "data-test": test, ...attrs }, label);
  node.addEventListener("click", onClick);
  return node;
}

/** A link to a route of the console (a hash URL). */
export function link(label: string, href: string, test: string, attrs: Attrs = {}): HTMLAnchorElement {
  return el("a", { href, "data-test": test, ...attrs }, label);
}

/** A labelled form control. */
export function field(label: string, control: HTMLElement, hint?: string): HTMLLabelElement {
  return el(
    "label",
    { class: "field" },
    el("span", { class: "field-label" }, label),
    control,
    hint ? el("small", { class: "hint" }, hint) : undefined,
  );
}

export function input(test: string, attrs: Attrs = {}): HTMLInputElement {
  return el("input", { type: "text", "data-test": test, autocomplete: "off", spellcheck: "false", ...attrs });
}

export function checkbox(test: string, checked: boolean, attrs: Attrs = {}): HTMLInputElement {
  const box = el("input", { type: "checkbox", "data-test": test, ...attrs });
  box.checked = checked;
  return box;
}

/** A select of an enum's values, by their proto names; `anyLabel` adds value 0 as "no filter". */
export function enumSelect(
  desc: DescEnum,
  test: string,
  selected: number,
  anyLabel?: string,
): HTMLSelectElement {
  const select = el("select", { "data-test": test });
  for (const value of desc.values) {
    if (value.number === 0 && anyLabel === undefined) continue;
    const option = el(
      "option",
      { value: String(value.number) },
      value.number === 0 ? (anyLabel ?? "") : value.name,
    );
    option.selected = value.number === selected;
    select.appendChild(option);
  }
  return select;
}

/** An enum value's proto name, e.g. "LICENSE_TYPE_PRO". */
export function enumName(desc: DescEnum, value: number): string {
  return desc.values.find((v) => v.number === value)?.name ?? String(value);
}

export function formatTime(ts: Timestamp | undefined): string {
  if (!ts) return "";
  return timestampDate(ts)
    .toISOString()
    .replace("T", " ")
    .replace(/\.\d+Z$/, "Z");
}

/** A table with a header row; rows are appended to the returned body. */
export function table(
  test: string,
  headers: string[],
): { table: HTMLTableElement; body: HTMLTableSectionElement } {
  const body = el("tbody");
  const head = el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", {}, h))));
  return { table: el("table", { "data-test": test }, head, body), body };
}

/** A term and its description, for a <dl>. */
export function term(label: string, value: string, test?: string): HTMLElement[] {
  return [el("dt", {}, label), el("dd", { "data-test": test }, value)];
}

export function cell(...children: Child[]): HTMLTableCellElement {
  return el("td", {}, ...children);
}

/** A form whose submit (button or Enter) calls `onSubmit` instead of navigating. */
export function form(test: string, onSubmit: () => void, ...children: Child[]): HTMLFormElement {
  // The server validates; the browser's own checks would hide its answer (and its field violations).
  const node = el("form", { "data-test": test, class: "form", novalidate: true }, ...children);
  node.addEventListener("submit", (event) => {
    event.preventDefault();
    onSubmit();
  });
  return node;
}

/** A random UUID (v4) for `request_id`; crypto.randomUUID needs a secure context, this does not. */
export function requestId(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
