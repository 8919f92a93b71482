/* bus_int: what the event logs behind the bus (evlog.c, natslog.c) and the subscribers
 * share inside bus/: building events from stored or received bytes, resync notices, and
 * the fan-out a log calls when an event arrives by itself (natslog). Loop thread, except
 * the pure builders. */
#ifndef AG_BUS_INT_H
#define AG_BUS_INT_H
#include "bus.h"

/* Sets ev->type from its JSON ({"type":"..." first). Pure. */
void event_type_from_json(struct event *ev);
/* The notice that events between since and last cannot be replayed: the client must
 * reload what it shows ({"type":"resync","properties":{since,oldest,last},"seq":last}). */
struct event *event_resync(int64_t since, int64_t oldest, int64_t last);

/* Hands ev to every subscriber (the log has kept it already). */
void bus_deliver(struct bus *B, struct event *ev);

#endif
