/* fx_state: what the fixture plugin tests/plugins/fx.c records, read back by the tests
 * through dlsym("fx_state"). One definition for both sides. */
#ifndef FX_STATE_H
#define FX_STATE_H
#include <stdatomic.h>

struct fx_state {
	atomic_int loaded, unloaded;
	atomic_int second_done_rc;   /* the rc of completing a call twice */
	atomic_int thread_done_rc;   /* a completion from a foreign thread */
	atomic_int thread_loop_rc;   /* a loop-only call from a foreign thread */
	atomic_int late_done_rc;     /* a completion after cancel */
	atomic_int cancels;
	atomic_int events, seq_out_of_order;
	atomic_llong last_seq;
	atomic_llong dropped_seen;
	atomic_int future_fn_present; /* 1 if the host had a function newer than it */
	atomic_int turn_ends;
	atomic_int idle_calls;
	atomic_int kv_rc;
	char kv_value[64];
	atomic_int prompts_ok, prompts_failed, coalesced, dones, threads_done;
	atomic_int timer_fired, timer_cancelled_fired, posted_ran, post_at_unload_rc;
	char last_done_state[16], last_done_error[96];
	/* permission_ask: its rc, the rc for a call that is not the plugin's, the answer */
	atomic_int perm_rc, perm_foreign_rc, perm_decision, perm_answers;
	char perm_message[256];
	char workspace[512]; /* setting("workspace") at load */
	/* session.compact: calls, the last one's flags, model and messages in its history */
	atomic_int compacts, compact_auto, compact_overflow, compact_msgs;
	char compact_model[64];
};

#endif
