// A paged table: the first page, "Load more" with next_page_token, and a refresh that re-reads
// as many rows as are on screen (when a change arrives) without losing the reader's place.

import { button, el, replace, table } from "../dom";
import type { PageContext } from "../shell";

const PAGE_SIZE = 50;
const MAX_PAGE_SIZE = 1000;

export interface PageOf<T> {
  items: T[];
  next: string;
}

export interface PagerOptions<T> {
  /** data-test of the table; rows, "Load more" and the empty line derive theirs from it. */
  test: string;
  headers: string[];
  fetch: (pageToken: string, pageSize: number, signal: AbortSignal) => Promise<PageOf<T>>;
  row: (item: T) => HTMLTableRowElement;
  empty: string;
}

export interface Pager {
  element: HTMLElement;
  /** Reads the first page again (after the filters changed): a user's action. */
  reset(): Promise<boolean>;
  /** Re-reads the rows on screen: a refresh, which keeps the error area as it is. */
  refresh(): Promise<boolean>;
}

export function pager<T>(ctx: PageContext, opts: PagerOptions<T>): Pager {
  const { table: tableEl, body } = table(opts.test, opts.headers);
  const emptyLine = el("p", { "data-test": `${opts.test}-empty`, class: "empty", hidden: true }, opts.empty);
  const more = button("Load more", `${opts.test}-load-more`, () => void ctx.act(loadMore), { hidden: true });
  let next = "";
  let shown = 0;
  // Answers of a superseded read are dropped.
  let generation = 0;

  function show(page: PageOf<T>, appendRows: boolean): void {
    const rows = page.items.map(opts.row);
    if (appendRows) {
      body.append(...rows);
      shown += rows.length;
    } else {
      replace(body, ...rows);
      shown = rows.length;
    }
    next = page.next;
    more.hidden = next === "";
    emptyLine.hidden = shown !== 0;
  }

  async function readFirst(pageSize: number): Promise<void> {
    const mine = ++generation;
    const page = await opts.fetch("", pageSize, ctx.signal);
    if (mine === generation) show(page, false);
  }

  async function loadMore(): Promise<void> {
    if (next === "") return;
    const mine = ++generation;
    const page = await opts.fetch(next, PAGE_SIZE, ctx.signal);
    if (mine === generation) show(page, true);
  }

  return {
    element: el("div", { class: "pager" }, tableEl, emptyLine, more),
    reset: () => ctx.act(() => readFirst(PAGE_SIZE)),
    refresh: () => ctx.load(() => readFirst(Math.min(Math.max(PAGE_SIZE, shown), MAX_PAGE_SIZE))),
  };
}
