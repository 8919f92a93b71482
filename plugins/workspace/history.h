/* history: what the workspace tools changed, per turn, so that a revert can undo it
 * and a diff can show it. When the session's directory is inside a git worktree, a
 * write, edit or bash call snapshots the worktree before it acts and after (its worker,
 * snap.c), and the files that changed are recorded on the loop in the plugin's kv:
 * snap/<session>/<turn> = {top, calls: [{call, before, after, files}]}, listed in
 * snaps/<session>. At the gateway's AG_HOOK_SESSION_REVERT (loop) a revert puts the
 * files the hidden calls changed back as they were before the first of them (files it
 * created are deleted) after keeping the state it changes in revert/<session> (what
 * unrevert puts back); at AG_HOOK_SESSION_DIFF the recorded files are compared, from
 * the first snapshot to now (or within one turn). Outside git nothing is recorded. */
#ifndef WS_HISTORY_H
#define WS_HISTORY_H

#include "ws.h"

/* Worker: before j acts (write, edit, bash): the worktree's snapshot. */
void history_begin(struct ws_job *j);
/* Worker: j has acted; records what changed (posted to the loop ahead of the call's
 * end). Does nothing for a call history_begin did not snapshot, or twice. */
void history_end(struct ws_job *j);
/* Loop, in on_load: snapshots on (data: the gateway's data directory, NULL: off),
 * the hooks registered. */
int history_load(const char *data, struct ag_error *err);
void history_unload(void);

#endif
