// A paged table: the first page, "Load more" with next_page_token, and a refresh that re-reads
// as many rows as are on screen (when a change arrives) without losing the reader's place.
//
// The server ties a page token to the filters it was made for, so the filters are read from
// their inputs only when the list is (re)started (`reset`, or the first read): "Load more" and
// every refresh use that snapshot, whatever has been typed in the inputs since.
//
// Pages are asked with page_size 0, the server's default (50, or less when the server's
// --max-page-size is lower), and followed with their tokens: never a size the server may refuse.

import { button, el, replace, table } from "../dom";
import type { PageContext } from "../shell";

/** The server's default page size. */
const PAGE_SIZE = 0;

export interface PageOf<T> {
  items: T[];
  next: string;
}

export interface PagerOptions<T, F> {
  /** data-test of the table; rows, "Load more" and the empty line derive theirs from it. */
  test: string;
  headers: string[];
  /** Reads the filter inputs: called when the list is (re)started, never for a next page. */
  filters?: () => F;
  fetch: (filters: F, pageToken: string, pageSize: number, signal: AbortSignal) => Promise<PageOf<T>>;
  row: (item: T) => HTMLTableRowElement;
  empty: string;
}

export interface Pager<F> {
  element: HTMLElement;
  /** Reads the filters and the first page again (after the filters changed): a user's action. */
  reset(): Promise<boolean>;
  /** Re-reads the rows on screen with the applied filters: a refresh, which keeps the error area as it is. */
  refresh(): Promise<boolean>;
  /** The filters the rows on screen were (or are being) read with. */
  applied(): F;
}

export function pager<T, F = undefined>(ctx: PageContext, opts: PagerOptions<T, F>): Pager<F> {
  const { table: tableEl, body } = table(opts.test, opts.headers);
  const emptyLine = el("p", { "data-test": `${opts.test}-empty`, class: "empty", hidden: true }, opts.empty);
  const more = button("Load more", `${opts.test}-load-more`, () => void ctx.act(loadMore), { hidden: true });
  const readFilters = (): F => (opts.filters ? opts.filters() : (undefined as F));
  /** The filters of the latest (re)start; undefined until the first read. */
  let applied: { filters: F } | undefined;
  /** The next page's token, and the filters it was made for. */
  let next: { token: string; filters: F } | undefined;
  let shown = 0;
  // Answers of a superseded read are dropped.
  let generation = 0;

  function current(): F {
    if (!applied) applied = { filters: readFilters() };
    return applied.filters;
  }

  function show(items: T[], nextToken: string, filters: F, appendRows: boolean): void {
    const rows = items.map(opts.row);
    if (appendRows) {
      body.append(...rows);
      shown += rows.length;
    } else {
      replace(body, ...rows);
      shown = rows.length;
    }
    next = nextToken === "" ? undefined : { token: nextToken, filters };
    more.hidden = next === undefined;
    emptyLine.hidden = shown !== 0;
  }

  /** Reads pages from the first until at least `atLeast` rows (or the last page), then shows them at once. */
  async function readFirst(atLeast: number): Promise<void> {
    const mine = ++generation;
    const filters = current();
    const items: T[] = [];
    let token = "";
    do {
      const page = await opts.fetch(filters, token, PAGE_SIZE, ctx.signal);
      if (mine !== generation) return;
      items.push(...page.items);
      token = page.next;
    } while (token !== "" && items.length < atLeast);
    show(items, token, filters, false);
  }

  async function loadMore(): Promise<void> {
    if (!next) return;
    const { token, filters } = next;
    const mine = ++generation;
    const page = await opts.fetch(filters, token, PAGE_SIZE, ctx.signal);
    if (mine === generation) show(page.items, page.next, filters, true);
  }

  return {
    element: el("div", { class: "pager" }, tableEl, emptyLine, more),
    reset: () => {
      applied = { filters: readFilters() };
      // The token on screen belongs to the old filters: no "Load more" until the new first page.
      next = undefined;
      more.hidden = true;
      return ctx.act(() => readFirst(1));
    },
    refresh: () => ctx.load(() => readFirst(Math.max(1, shown))),
    applied: current,
  };
}
