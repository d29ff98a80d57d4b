// Live changes: one ChangeService.WatchChanges stream while signed in, from "now" (no
// after_sequence). Each event bumps the header's counter (the changes seen since the page on
// screen was opened) and is handed to the page, which refreshes if it concerns it. When the
// stream ends it is opened again with backoff (doubling, with random jitter), resuming after the
// last event or checkpoint seen (with its log_id); when that resume point is refused, it starts
// from now again and the page is re-read, since events may have been missed. A refused key ends
// it for good: UNAUTHENTICATED (revoked or expired) signs out, PERMISSION_DENIED stops it.

import { Code, ConnectError } from "@connectrpc/connect";
import type { ChangeEvent } from "./gen/telephony/admin/v1/change_service_pb";
import { codeName } from "./api/errors";
import { changes } from "./api/transport";
import { showLiveCount, showLiveState } from "./shell";

const MIN_DELAY_MS = 1_000;
const MAX_DELAY_MS = 30_000;
/** Each wait is the backoff delay times a random factor in [1 - JITTER, 1 + JITTER]. */
const JITTER = 0.3;
/** A stream that stayed up this long resets the backoff. */
const HEALTHY_MS = 10_000;

export interface LiveHandlers {
  /** After each event, and (with no event) after a gap in which events may have been missed. */
  onChange(event?: ChangeEvent): void;
  /** The key was refused (UNAUTHENTICATED): the stream has stopped. */
  onUnauthenticated(err: ConnectError): void;
}

let controller: AbortController | undefined;
let count = 0;

/** Opens the stream (closing any previous one). */
export function startLive(accountId: string, handlers: LiveHandlers): void {
  stopLive();
  controller = new AbortController();
  void watch(controller.signal, accountId, handlers);
}

export function stopLive(): void {
  controller?.abort();
  controller = undefined;
  resetLiveCount();
  showLiveState("stopped");
}

/** Starts the counter again from 0: another page is on screen. */
export function resetLiveCount(): void {
  count = 0;
  showLiveCount(count);
}

async function watch(signal: AbortSignal, accountId: string, handlers: LiveHandlers): Promise<void> {
  let resume: { sequence: bigint; logId: string } | undefined;
  let delay = MIN_DELAY_MS;
  while (!signal.aborted) {
    let openedAt = 0;
    let why = "the stream ended";
    const opened = (): void => {
      openedAt = Date.now();
      showLiveState("live");
    };
    showLiveState("connecting");
    try {
      const stream = changes.watchChanges(
        { accountId, afterSequence: resume?.sequence, logId: resume?.logId ?? "" },
        { signal },
      );
      for await (const item of stream) {
        // The first message is the checkpoint the server sends once it has caught up: from then
        // on every change is seen.
        if (openedAt === 0) opened();
        if (item.kind.case === "event") {
          const event = item.kind.value;
          resume = { sequence: event.sequence, logId: event.logId };
          count += 1;
          showLiveCount(count);
          handlers.onChange(event);
        } else if (item.kind.case === "checkpoint") {
          const cp = item.kind.value;
          if (!resume || cp.sequence > resume.sequence || cp.logId !== resume.logId) {
            resume = { sequence: cp.sequence, logId: cp.logId };
          }
        }
      }
    } catch (err) {
      if (signal.aborted) return;
      const e = ConnectError.from(err);
      why = `${codeName(e.code)} ${e.rawMessage}`;
      if (e.code === Code.Unauthenticated) {
        // The key is no longer valid (revoked, or its account deleted): retrying cannot help.
        showLiveState("stopped", why);
        handlers.onUnauthenticated(e);
        return;
      }
      if (e.code === Code.PermissionDenied) {
        // The key may not watch: retrying cannot help either.
        showLiveState("stopped", why);
        return;
      }
      if (e.code === Code.OutOfRange || e.code === Code.FailedPrecondition) {
        // The resume point is gone (too old, or the log was restored or replaced): start from
        // now and re-read what is on screen.
        resume = undefined;
        handlers.onChange();
      }
    }
    if (signal.aborted) return;
    if (openedAt !== 0 && Date.now() - openedAt >= HEALTHY_MS) delay = MIN_DELAY_MS;
    // Jitter spreads the reconnections of many consoles after a server restart.
    const wait = Math.round(delay * (1 - JITTER + 2 * JITTER * Math.random()));
    showLiveState("retrying", `${why}; again in ${(wait / 1000).toFixed(1)} s`);
    await sleep(wait, signal);
    delay = Math.min(delay * 2, MAX_DELAY_MS);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}
